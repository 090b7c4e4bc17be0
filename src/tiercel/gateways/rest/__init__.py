"""The REST API, by resource: jobs, the pool's views (sites, queues, workers), reservations,
tokens, the event stream, JID links; ``app`` puts them on the manager's one port."""
