//! How a real authentik's HTTP server (gunicorn behind authentik's Go server) treats
//! connections under load, modelled on request: kept-alive connections expire after a short
//! idle time, and workers are recycled after a number of requests. Off by default.
//!
//! Made deterministic: the double never closes an idle connection itself. A request that
//! arrives on a connection idle for longer than the keep-alive is answered as if it had raced
//! the server's close (the case a client sees when it reuses a connection the server is
//! closing), and a request on a connection of a recycled worker is reset.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a request that reuses an expired kept-alive connection gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepAliveRace {
    /// The connection is reset before any answer.
    #[default]
    Reset,
    /// `405` with an empty body, then the connection closes: what authentik 2025.12.4 answered
    /// outpost PATCHes on kept-alive connections under load (never on fresh ones).
    EmptyMethodNotAllowed,
}

/// The connection handling to imitate. JSON form (admin API `POST /_double/server`):
/// `{"keep_alive_ms": 2000, "keep_alive_race": "empty_method_not_allowed", "recycle_after": 1000}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServerBehaviour {
    /// Kept-alive connections idle longer than this are closed by the server (gunicorn's
    /// `keepalive`; authentik sets 2 s). `None`: kept forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive_ms: Option<u64>,
    /// What a request racing that close gets.
    #[serde(default)]
    pub keep_alive_race: KeepAliveRace,
    /// A worker is replaced after serving this many requests (gunicorn's `max_requests`;
    /// authentik: ~1,000), and the connections it served are reset. `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recycle_after: Option<u64>,
}

impl ServerBehaviour {
    /// authentik 2025.12.4's: 2 s keep-alive (answering a race with the empty 405), and a
    /// worker recycled after `recycle_after` requests.
    pub fn authentik(recycle_after: u64) -> Self {
        ServerBehaviour {
            keep_alive_ms: Some(2_000),
            keep_alive_race: KeepAliveRace::EmptyMethodNotAllowed,
            recycle_after: Some(recycle_after),
        }
    }
}

/// What the server knows of one connection.
#[derive(Debug, Default)]
pub(crate) struct ConnectionState {
    /// When its last answer was produced; `None` before its first request.
    idle_since: Option<Instant>,
    /// The worker that serves it (fixed by its first request).
    worker: Option<u64>,
}

impl ConnectionState {
    /// The connection is idle again from `now`.
    pub(crate) fn answered(&mut self, now: Instant) {
        self.idle_since = Some(now);
    }
}

/// What happens to one request before it reaches the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Serve,
    /// It reused a connection the server had closed for idleness.
    KeepAliveExpired(KeepAliveRace),
    /// Its connection belonged to a worker that has been recycled.
    WorkerRecycled,
}

/// The server's workers: which one serves new connections, and how much it has served.
#[derive(Debug, Default)]
pub(crate) struct Workers {
    pub(crate) behaviour: ServerBehaviour,
    current: u64,
    served: u64,
}

impl Workers {
    /// Decides one request's fate and counts it against the worker that serves it.
    pub(crate) fn admit(&mut self, connection: &mut ConnectionState, now: Instant) -> Admission {
        if let (Some(keep_alive), Some(idle_since)) =
            (self.behaviour.keep_alive_ms, connection.idle_since)
            && now.saturating_duration_since(idle_since) > Duration::from_millis(keep_alive)
        {
            return Admission::KeepAliveExpired(self.behaviour.keep_alive_race);
        }
        let worker = *connection.worker.get_or_insert(self.current);
        if worker != self.current {
            return Admission::WorkerRecycled;
        }
        self.served += 1;
        if self
            .behaviour
            .recycle_after
            .is_some_and(|limit| self.served >= limit)
        {
            // This request is still answered; then the worker exits.
            self.current += 1;
            self.served = 0;
        }
        Admission::Serve
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn off_serves_everything() {
        let mut workers = Workers::default();
        let mut connection = ConnectionState::default();
        let start = Instant::now();
        for second in 0..5 {
            assert_eq!(
                workers.admit(&mut connection, at(start, second * 10_000)),
                Admission::Serve
            );
            connection.answered(at(start, second * 10_000));
        }
    }

    #[test]
    fn a_connection_idle_past_the_keep_alive_races_the_close() {
        let mut workers = Workers {
            behaviour: ServerBehaviour::authentik(1_000),
            ..Workers::default()
        };
        let mut connection = ConnectionState::default();
        let start = Instant::now();
        assert_eq!(workers.admit(&mut connection, start), Admission::Serve);
        connection.answered(start);
        assert_eq!(
            workers.admit(&mut connection, at(start, 1_999)),
            Admission::Serve
        );
        connection.answered(at(start, 2_000));
        assert_eq!(
            workers.admit(&mut connection, at(start, 4_001)),
            Admission::KeepAliveExpired(KeepAliveRace::EmptyMethodNotAllowed)
        );
    }

    #[test]
    fn connections_of_a_recycled_worker_are_reset_and_new_ones_served() {
        let mut workers = Workers {
            behaviour: ServerBehaviour {
                recycle_after: Some(2),
                ..ServerBehaviour::default()
            },
            ..Workers::default()
        };
        let now = Instant::now();
        let mut old = ConnectionState::default();
        assert_eq!(workers.admit(&mut old, now), Admission::Serve);
        assert_eq!(workers.admit(&mut old, now), Admission::Serve);
        assert_eq!(workers.admit(&mut old, now), Admission::WorkerRecycled);
        let mut fresh = ConnectionState::default();
        assert_eq!(workers.admit(&mut fresh, now), Admission::Serve);
    }
}
