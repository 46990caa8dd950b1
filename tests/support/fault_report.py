"""What a fault case did to the deliveries, counted from the ledger and from the receiver's
side: the rows of the fault report (tests/faults/conftest.py prints and writes it).

Columns:

* triggers: triggers the service accepted (``emit()`` returned, or POST /v1/triggers said 202);
* deliveries: delivery rows those triggers made;
* sent: HTTP requests the receiver(s) under test got (retries included);
* delivered / dead: deliveries in that end state; "dead after" lists their attempt counts;
* duplicated: requests for a webhook-id the receiver had already accepted (answered 200):
  what a receiver must de-duplicate. Retries after a failed attempt are not duplicates;
* lost: accepted triggers never fanned out, plus deliveries never settled (neither delivered
  nor dead) when the case ended. Must be 0.
"""

import collections
import dataclasses

import sqlalchemy as sa

SETTLED = ("delivered", "dead", "cancelled", "skipped")
COLUMNS = ("fault", "triggers", "deliveries", "sent", "delivered", "duplicated", "dead", "dead after", "lost",
           "seconds", "notes")


@dataclasses.dataclass
class Row:
    fault: str
    triggers: int
    deliveries: int
    sent: int
    delivered: int
    duplicated: int
    dead: int
    dead_after: str
    lost: int
    seconds: float = 0.0
    notes: str = ""
    # what the case asserts beyond the counts, kept out of the table
    open_states: tuple = ()
    dead_attempts: tuple = ()
    not_fanned_out: tuple = ()
    foreign_ids: tuple = ()
    fanned_out_twice: int = 0
    bodies_changed: tuple = ()

    def cells(self):
        return (self.fault, self.triggers, self.deliveries, self.sent, self.delivered, self.duplicated, self.dead,
                self.dead_after, self.lost, f"{self.seconds:.1f}", self.notes)


def tally(fault, engine, accepted, requests, success=(200,), notes=""):
    """The row of one case: ``accepted`` trigger_ids, ``requests`` the receiver recorded
    (tests.support.servers.Recorded, their ``answered`` status set)."""
    accepted = set(accepted)
    with engine.begin() as conn:
        stored = set(conn.execute(sa.text("SELECT trigger_id FROM triggers")).scalars())
        rows = conn.execute(sa.text(
            "SELECT d.id, d.status, d.attempts, d.hook_id, d.trigger_pk, t.trigger_id "
            "FROM deliveries d JOIN triggers t ON t.id = d.trigger_pk")).all()
    rows = [row for row in rows if row.trigger_id in accepted]
    statuses = collections.Counter(row.status for row in rows)
    open_rows = [row for row in rows if row.status not in SETTLED]
    not_fanned_out = sorted(accepted - stored)
    ids = {row.id for row in rows}
    accepted_by_receiver = collections.Counter(r.headers.get("webhook-id") for r in requests if r.answered in success)
    bodies = collections.defaultdict(set)
    for request in requests:
        bodies[request.headers.get("webhook-id")].add(request.body)
    dead_attempts = tuple(sorted(row.attempts for row in rows if row.status == "dead"))
    return Row(
        fault=fault, triggers=len(accepted), deliveries=len(rows), sent=len(requests),
        delivered=statuses["delivered"], duplicated=sum(n - 1 for n in accepted_by_receiver.values() if n > 1),
        dead=statuses["dead"], dead_after=", ".join(str(n) for n in sorted(set(dead_attempts))) or "-",
        lost=len(not_fanned_out) + len(open_rows), notes=notes,
        open_states=tuple(sorted(collections.Counter(row.status for row in open_rows).items())),
        dead_attempts=dead_attempts, not_fanned_out=tuple(not_fanned_out),
        foreign_ids=tuple(sorted({r.headers.get("webhook-id") for r in requests} - ids, key=str)),
        fanned_out_twice=len(rows) - len({(row.trigger_pk, row.hook_id) for row in rows}),
        bodies_changed=tuple(sorted(key for key, seen in bodies.items() if len(seen) > 1)),
    )


#: this process's report: the cells of each case, in the order the cases finished. Under
#: pytest-xdist each worker fills its own, and hands it to the controller when it finishes
#: (``workeroutput``), which prints the whole table (tests/conftest.py).
CELLS = []


def markdown(cells):
    """The report as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for row in cells:
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)
