//! Background delivery used from inside tokio runtimes: capturing never
//! blocks, and `flush_async` lets other tasks run while it waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aitrace_core::{Background, BufferedLogger, Output};
use aitrace_testkit::{Fault, FaultServer};

fn slow_server_logger() -> (FaultServer, BufferedLogger) {
    let server = FaultServer::start();
    server.set_default(Fault::Slow(Duration::from_millis(300)));
    let log = BufferedLogger::builder()
        .output(Output::http(&server.url).unwrap())
        .delivery(Background::new().flush_interval(Duration::from_secs(3600)))
        .flush_timeout(Duration::from_secs(20))
        .try_build()
        .unwrap();
    (server, log)
}

fn ticker(ticks: &Arc<AtomicUsize>) -> tokio::task::JoinHandle<()> {
    let ticks = ticks.clone();
    tokio::spawn(async move {
        loop {
            ticks.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

#[tokio::test(flavor = "current_thread")]
async fn current_thread_runtime_keeps_running_while_a_flush_waits() {
    let (server, log) = slow_server_logger();
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticking = ticker(&ticks);
    for i in 0..200 {
        log.info("from a task").field("i", i).emit();
    }
    tokio::task::yield_now().await;
    let before = ticks.load(Ordering::SeqCst);
    let report = log.flush_async().await.unwrap();
    let during = ticks.load(Ordering::SeqCst) - before;
    assert!(
        during >= 10,
        "the only runtime thread was blocked: {during} ticks"
    );
    assert_eq!(report.deliveries()[0].records(), 200);
    assert_eq!(server.records().len(), 200);
    ticking.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_thread_runtime_tasks_capture_concurrently_and_flush() {
    let (server, log) = slow_server_logger();
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticking = ticker(&ticks);
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                for i in 0..250 {
                    log.info("task").field("task", t).field("i", i).emit();
                    if i % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let before = ticks.load(Ordering::SeqCst);
    let report = log.flush_async().await.unwrap();
    assert!(ticks.load(Ordering::SeqCst) - before >= 10);
    assert_eq!(report.records(), 2000);
    assert_eq!(server.records().len(), 2000);
    // The blocking flush is fine off the runtime's threads.
    log.info("late").emit();
    let blocking = log.clone();
    let report = tokio::task::spawn_blocking(move || blocking.flush())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.records(), 1);
    ticking.abort();
}

#[tokio::test(flavor = "current_thread")]
async fn an_async_flush_times_out_without_blocking() {
    let server = FaultServer::start();
    server.set_default(Fault::Hang);
    let log = BufferedLogger::builder()
        .output(Output::http(&server.url).unwrap())
        .delivery(Background::new().flush_interval(Duration::from_millis(20)))
        .flush_timeout(Duration::from_millis(200))
        .shutdown_timeout(Duration::from_millis(200))
        .try_build()
        .unwrap();
    log.info("stuck").emit();
    let started = std::time::Instant::now();
    let err = log.flush_async().await.unwrap_err();
    assert_eq!(err.kind(), aitrace_core::ErrorKind::FlushTimedOut);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Shut down off the runtime thread: it may wait for the hung request.
    tokio::task::spawn_blocking(move || log.shutdown(Duration::from_millis(200)))
        .await
        .unwrap()
        .ok();
}
