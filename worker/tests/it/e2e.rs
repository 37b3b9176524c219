//! End to end: a real registry, skopeo, receiver, RabbitMQ, worker, Postgres.
