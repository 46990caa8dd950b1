"""marshmallow schemas: API bodies, triggers and entities."""
