"""Queue and task names: the wire contract between producers, the scheduler and workers."""

TRIGGERS_QUEUE = "triggers"
DELIVERIES_QUEUE = "deliveries"
FAN_OUT = "doo.fan_out"
DELIVER = "doo.deliver"
