//! Tasks off the Kafka request path (the broker's timers and loops, the quorum's and the
//! listeners' serving tasks, blocking jobs of the admin listener, console, schema registry and
//! controller), spawned as one boxed type each.
//!
//! tokio instantiates its task machinery (the harness, its poll, shutdown, join and abort
//! functions: about 3 KB of code) once per spawned future or closure type. Boxed, all these
//! tasks share a few instantiations; the cost is one allocation per spawn and a virtual call
//! per poll, which is nothing beside what these tasks do. The request path's own spawns
//! (a produce's or a request's blocking job, a connection's task) keep their concrete types.

use std::future::Future;
use std::pin::Pin;

use tokio::task::JoinHandle;

/// A boxed task, the one future type tokio's task machinery is instantiated for (per output).
type Task<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A boxed blocking job: one closure type for tokio's blocking pool (per output).
type Job<T> = Box<dyn FnOnce() -> T + Send>;

/// `tokio::spawn` for a task off the request path.
#[track_caller]
pub fn spawn<T: Send + 'static>(task: impl Future<Output = T> + Send + 'static) -> JoinHandle<T> {
    tokio::spawn(Box::pin(task) as Task<T>)
}

/// `Handle::spawn` for a task off the request path on another runtime.
#[track_caller]
pub fn spawn_on<T: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    task: impl Future<Output = T> + Send + 'static,
) -> JoinHandle<T> {
    runtime.spawn(Box::pin(task) as Task<T>)
}

/// `tokio::task::spawn_blocking` for a job off the request path.
#[track_caller]
pub fn spawn_blocking<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    tokio::task::spawn_blocking(Box::new(job) as Job<T>)
}
