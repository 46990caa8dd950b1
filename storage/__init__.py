"""Persistence shared by the API (app/) and the delivery engine (workers/)."""
