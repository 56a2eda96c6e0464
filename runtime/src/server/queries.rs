//! The requests a server is running and has recently run: `.show queries` and `.cancel query`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

/// How many finished requests `.show queries` still lists.
const KEEP_FINISHED: usize = 200;

/// One request, running or finished.
#[derive(Debug, Clone)]
pub struct QueryEntry {
    pub client_request_id: String,
    pub activity_id: String,
    pub text: String,
    pub database: String,
    /// The caller's canonical principal.
    pub principal: String,
    pub application: String,
    pub started_on: chrono::DateTime<chrono::Utc>,
    started: Instant,
    pub finished: Option<(chrono::DateTime<chrono::Utc>, std::time::Duration)>,
    /// `InProgress`, `Completed`, `Failed`, `Cancelled`.
    pub state: &'static str,
    pub failure: String,
    cancel: CancellationToken,
}

impl QueryEntry {
    pub fn duration(&self) -> std::time::Duration {
        self.finished.map(|(_, d)| d).unwrap_or_else(|| self.started.elapsed())
    }
}

/// The registry, shared by the server's tasks.
#[derive(Debug, Clone, Default)]
pub struct Queries {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    running: Vec<QueryEntry>,
    finished: VecDeque<QueryEntry>,
}

/// A running request's handle: finish it, or drop it (then it is recorded as failed).
pub struct Running {
    queries: Queries,
    activity_id: String,
    pub cancel: CancellationToken,
    done: bool,
}

impl Queries {
    /// Records a request that starts now.
    pub fn start(&self, client_request_id: &str, activity_id: &str, text: &str, database: &str, principal: &str, application: &str) -> Running {
        let cancel = CancellationToken::new();
        let entry = QueryEntry {
            client_request_id: client_request_id.to_string(),
            activity_id: activity_id.to_string(),
            text: text.to_string(),
            database: database.to_string(),
            principal: principal.to_string(),
            application: application.to_string(),
            started_on: chrono::Utc::now(),
            started: Instant::now(),
            finished: None,
            state: "InProgress",
            failure: String::new(),
            cancel: cancel.clone(),
        };
        if let Ok(mut g) = self.inner.lock() {
            g.running.push(entry);
        }
        Running { queries: self.clone(), activity_id: activity_id.to_string(), cancel, done: false }
    }

    /// Every request, running first, that `who` may see (`None`: all of them).
    pub fn list(&self, who: Option<&str>) -> Vec<QueryEntry> {
        let Ok(g) = self.inner.lock() else { return Vec::new() };
        g.running.iter().chain(g.finished.iter().rev()).filter(|e| who.is_none_or(|w| e.principal == w)).cloned().collect()
    }

    /// Cancels the running request with this client request id, if `who` may (`None`: anyone's).
    /// Returns whether one was found.
    pub fn cancel(&self, client_request_id: &str, who: Option<&str>) -> bool {
        let Ok(g) = self.inner.lock() else { return false };
        let mut found = false;
        for e in g.running.iter().filter(|e| e.client_request_id == client_request_id && who.is_none_or(|w| e.principal == w)) {
            e.cancel.cancel();
            found = true;
        }
        found
    }

    fn finish(&self, activity_id: &str, state: &'static str, failure: String) {
        let Ok(mut g) = self.inner.lock() else { return };
        if let Some(i) = g.running.iter().position(|e| e.activity_id == activity_id) {
            let mut e = g.running.swap_remove(i);
            e.finished = Some((chrono::Utc::now(), e.started.elapsed()));
            e.state = if e.cancel.is_cancelled() && state != "Completed" { "Cancelled" } else { state };
            e.failure = failure;
            g.finished.push_back(e);
            while g.finished.len() > KEEP_FINISHED {
                g.finished.pop_front();
            }
        }
    }
}

impl Running {
    pub fn completed(mut self) {
        self.done = true;
        self.queries.finish(&self.activity_id, "Completed", String::new());
    }

    pub fn failed(mut self, why: String) {
        self.done = true;
        self.queries.finish(&self.activity_id, "Failed", why);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.done {
            self.queries.finish(&self.activity_id, "Failed", "the client went away".into());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn own_queries_and_cancellation() {
        let q = Queries::default();
        let a = q.start("c1", "a1", "T | count", "D", "aaduser=alice", "app");
        let b = q.start("c2", "a2", "T", "D", "aaduser=bob", "app");
        assert_eq!(q.list(Some("aaduser=alice")).len(), 1);
        assert_eq!(q.list(None).len(), 2);
        // Bob cannot cancel Alice's query; an admin can.
        assert!(!q.cancel("c1", Some("aaduser=bob")));
        assert!(!a.cancel.is_cancelled());
        assert!(q.cancel("c1", None));
        assert!(a.cancel.is_cancelled());
        a.failed("cancelled".into());
        b.completed();
        let all = q.list(None);
        assert_eq!(all.iter().map(|e| e.state).collect::<Vec<_>>(), vec!["Completed", "Cancelled"]);
    }
}
