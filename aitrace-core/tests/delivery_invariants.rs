//! The delivery core's promises, each pinned by a test that failed on the
//! design it replaced: every record accounted for at every instant, the
//! spool owned by one thread, bounded exits, bounded disk use, waits that
//! are neither cut short nor lost, damaged spool files set aside.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use aitrace_core::{
    Background, BreakerPolicy, BufferedLogger, Builder, ErrorKind, Output, RetryPolicy,
};
use aitrace_testkit::{Fault, FaultServer, count_unique};

mod common;
use common::{emit, http, output_dirs, spooled_lines};

const WAIT: Duration = Duration::from_secs(20);

/// The delivery settings most tests start from: small batches, cut by size
/// or a flush rather than the clock, quick retries, and a breaker that opens
/// at the first failed batch.
fn settings() -> Background {
    Background::new()
        .batch_size(10)
        .flush_interval(Duration::from_secs(3600))
        .retry(
            RetryPolicy::default()
                .max_attempts(2)
                .initial_backoff(Duration::from_millis(2))
                .max_backoff(Duration::from_millis(5)),
        )
        .breaker(
            BreakerPolicy::default()
                .failure_threshold(1)
                .cooldown(Duration::from_millis(10))
                .max_cooldown(Duration::from_millis(20)),
        )
}

fn background(url: &str, settings: Background) -> Builder {
    BufferedLogger::builder()
        .output(http(url, Duration::from_secs(2)))
        .delivery(settings)
        .flush_timeout(WAIT)
        .shutdown_timeout(Duration::from_secs(3))
        .record_ids(true)
}

fn folder_bytes(dir: &Path, ext: &str) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum()
    })
}

/// Defect 1: a flapping server with a spool so small that it evicts all the
/// time. Every record ends delivered or counted dropped, and the books
/// balance at every instant a sampler looks.
#[test]
fn a_flapping_server_and_a_tiny_spool_lose_nothing_uncounted() {
    let server = FaultServer::start();
    let spool = tempfile::tempdir().unwrap();
    let log = background(
        &server.url,
        settings()
            .batch_size(20)
            .flush_interval(Duration::from_millis(2))
            .spool_dir(spool.path())
            .spool_max_bytes(48 * 1024), // a few batches
    )
    .capacity(1000)
    .overflow(aitrace_core::OverflowPolicy::Block(Duration::from_secs(5)))
    .try_build()
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut samples = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let stats = log.stats();
                assert!(stats.is_balanced(), "unbalanced at an instant: {stats:?}");
                samples += 1;
            }
            samples
        })
    };
    let (flapped, flaps) = crossbeam_channel::unbounded();
    std::thread::scope(|scope| {
        let server = &server;
        scope.spawn(move || {
            for round in 0..40 {
                server.set_down(round % 2 == 0);
                flapped.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(10)); // let the state last
            }
            server.set_down(false);
        });
        // A burst of records after every change of the server's state.
        for () in flaps {
            emit(&log, 150);
            log.trigger_flush();
        }
    });
    // The server is up for good: wait until the spool drained.
    let deadline = Instant::now() + WAIT;
    loop {
        let _ = log.flush_timeout(Duration::from_secs(2));
        let stats = log.stats();
        if stats.spool_pending == 0 && stats.in_flight == 0 && stats.buffered == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "never drained: {stats:?}");
    }
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap();
    let stats = log.stats();
    assert!(samples > 10, "the sampler looked {samples} times");
    assert!(stats.is_balanced(), "{stats:?}");
    let (unique, _duplicates) = count_unique(&server.records());
    assert_eq!(
        unique as u64 + stats.dropped,
        stats.captured,
        "every record reached the server or was counted dropped: {stats:?}"
    );
    eprintln!("FLAP {stats:?}");
    assert_eq!(stats.captured, 6000, "{stats:?}");
    assert!(stats.spooled > 0 && stats.replayed > 0, "{stats:?}");
    assert!(stats.dropped > 0, "the tiny spool evicted: {stats:?}");
}

/// Defect 2: after a shutdown, records captured later are set aside when
/// the last handle drops: to the spool, with no send on the dropping thread.
#[test]
fn the_last_handle_after_a_shutdown_spools_leftovers_without_sending() {
    let server = FaultServer::start();
    server.set_default(Fault::Hang);
    let spool = tempfile::tempdir().unwrap();
    let log = BufferedLogger::builder()
        .output(http(&server.url, Duration::from_secs(30)))
        .delivery(Background::new().spool_dir(spool.path()))
        .shutdown_timeout(Duration::from_millis(300))
        .try_build()
        .unwrap();
    log.shutdown(Duration::from_millis(300)).unwrap();
    emit(&log, 10);
    assert_eq!(log.len(), 10, "kept until the last handle drops");
    let started = Instant::now();
    drop(log);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "dropping took {:?}",
        started.elapsed()
    );
    assert_eq!(spooled_lines(spool.path()), 10);
    assert_eq!(server.requests(), 0, "nothing was sent");
}

/// Defect 2, the other half: the last handle's drop while a send hangs
/// returns within the shutdown timeout and the batch is in the spool.
#[test]
fn the_last_handle_drop_is_bounded_by_the_shutdown_timeout() {
    let server = FaultServer::start();
    server.set_default(Fault::Hang);
    let spool = tempfile::tempdir().unwrap();
    let log = background(&server.url, settings().spool_dir(spool.path()))
        .output(http(&server.url, Duration::from_secs(30)))
        .shutdown_timeout(Duration::from_millis(300))
        .try_build()
        .unwrap();
    emit(&log, 25);
    log.trigger_flush();
    let started = Instant::now();
    drop(log);
    assert!(
        started.elapsed() < Duration::from_millis(300) + Duration::from_secs(1),
        "dropping took {:?}",
        started.elapsed()
    );
    // Two outputs (the same hung server twice): 25 records each.
    assert_eq!(spooled_lines(spool.path()), 50);
}

/// Defect 3: a spool folder that cannot be created is an error from
/// `try_build`; `build` keeps the background sender, without a spool.
#[test]
fn an_unusable_spool_folder_keeps_background_delivery() {
    let server = FaultServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let err = background(&server.url, settings().spool_dir(file.join("spool")))
        .try_build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(err.to_string().contains("spool"), "{err}");

    let log = background(
        &server.url,
        settings().batch_size(5).spool_dir(file.join("spool")),
    )
    .build();
    emit(&log, 5);
    // No flush: a full batch is delivered by the background sender alone.
    assert!(
        server.wait_for(WAIT, |r| r.len() == 5),
        "delivered in the background"
    );
}

/// Defect 4: a server that refuses everything (a bad API key) does not fill
/// the disk: `rejected/` stays within a quarter of the spool's bound.
#[test]
fn refused_batches_stay_within_their_bound() {
    let server = FaultServer::start();
    server.set_default(Fault::Status(401));
    let spool = tempfile::tempdir().unwrap();
    let log = background(
        &server.url,
        settings()
            .batch_size(20)
            .spool_dir(spool.path())
            .spool_max_bytes(40_000),
    )
    .try_build()
    .unwrap();
    for i in 0..400 {
        log.info("refused")
            .field("i", i)
            .field("padding", "x".repeat(200))
            .emit();
    }
    let report = log.flush().unwrap();
    assert_eq!(report.deliveries()[0].dropped(), 400);
    let rejected = output_dirs(spool.path())[0].join("rejected");
    let kept = folder_bytes(&rejected, "jsonl");
    assert!(kept > 0, "the newest refused batches are kept");
    assert!(kept <= 10_000, "rejected/ holds {kept} bytes");
    let stats = log.stats();
    assert_eq!((stats.dropped, stats.delivered), (400, 0));
}

/// Defect 5: the wait for a `Retry-After` is not cut short by other work
/// (flushes, another output's progress).
#[test]
fn a_retry_after_wait_is_not_cut_short() {
    let server = FaultServer::start();
    server.script([Fault::RetryAfter(429, "2".into())]);
    let dir = tempfile::tempdir().unwrap();
    let log = background(
        &server.url,
        settings().retry(RetryPolicy::default().max_attempts(3)),
    )
    .output(Output::file(dir.path().join("also.jsonl")))
    .try_build()
    .unwrap();
    emit(&log, 10);
    log.trigger_flush();
    // Keep the other output and the flush machinery busy meanwhile.
    let started = Instant::now();
    while server.requests() < 2 && started.elapsed() < Duration::from_secs(4) {
        emit(&log, 10);
        let _ = log.flush_timeout(Duration::from_millis(20));
    }
    let times = server.request_times();
    assert!(times.len() >= 2, "retried: {times:?}");
    let gap = times[1] - times[0];
    assert!(gap >= Duration::from_millis(1900), "retried after {gap:?}");
}

struct CountingWaker;

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {}
}

/// Defect 5: polling a pending flush future keeps one waker, not one per poll.
#[test]
fn a_pending_flush_future_keeps_one_waker() {
    let server = FaultServer::start();
    server.set_default(Fault::Hang);
    let log = background(&server.url, settings())
        .output(http(&server.url, Duration::from_secs(30)))
        .shutdown_timeout(Duration::from_millis(200))
        .try_build()
        .unwrap();
    emit(&log, 5);
    let counter = Arc::new(CountingWaker);
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let mut flush = Box::pin(log.flush_async());
    for _ in 0..100 {
        assert!(flush.as_mut().poll(&mut cx).is_pending());
    }
    // Ours, the waker's own, and at most one kept by the flush.
    assert!(
        Arc::strong_count(&counter) <= 3,
        "{} wakers kept",
        Arc::strong_count(&counter) - 2
    );
}

/// Defect 5: a flush awaited while a shutdown gives up on a hung send is
/// woken and completes; it does not hang until its own (long) timeout.
#[test]
fn a_pending_async_flush_is_woken_when_shutdown_gives_up() {
    let server = FaultServer::start();
    server.set_default(Fault::Hang);
    let log = background(&server.url, settings())
        .output(http(&server.url, Duration::from_secs(30)))
        .flush_timeout(Duration::from_secs(120))
        .try_build()
        .unwrap();
    emit(&log, 5);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut flush = Box::pin(log.flush_async());
        let first = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut flush).poll(cx))).await;
        assert!(first.is_pending());
        let closer = log.clone();
        let shutdown = std::thread::spawn(move || closer.shutdown(Duration::from_millis(300)));
        let result = tokio::time::timeout(Duration::from_secs(5), flush)
            .await
            .expect("the flush was woken well before its own timeout");
        assert!(result.is_err(), "records were set aside, not delivered");
        assert!(shutdown.join().unwrap().is_err());
    });
}

/// Defect 6: damaged spool files (torn, not JSON, empty) are moved to
/// `corrupt/` and counted; the rest is replayed.
#[test]
fn damaged_spool_files_are_set_aside_and_the_rest_replayed() {
    let server = FaultServer::start();
    let spool = tempfile::tempdir().unwrap();
    server.set_down(true);
    {
        let log = background(&server.url, settings().spool_dir(spool.path()))
            .try_build()
            .unwrap();
        emit(&log, 30);
        log.flush().unwrap();
        log.shutdown(Duration::from_secs(1)).unwrap();
    }
    let dir = output_dirs(spool.path()).remove(0);
    assert_eq!(spooled_lines(spool.path()), 30);
    std::fs::write(
        dir.join("00000000000000000001-torn.jsonl"),
        b"{\"a\":1}\n{\"a\":",
    )
    .unwrap();
    std::fs::write(
        dir.join("00000000000000000002-junk.jsonl"),
        b"\xff\xfe junk\n",
    )
    .unwrap();
    std::fs::write(dir.join("00000000000000000003-empty.jsonl"), b"").unwrap();
    server.set_down(false);
    let log = background(&server.url, settings().spool_dir(spool.path()))
        .try_build()
        .unwrap();
    let stats = log.stats();
    assert_eq!(
        (stats.corrupt_files, stats.recovered, stats.spool_pending),
        (3, 30, 30),
        "{stats:?}"
    );
    assert!(
        server.wait_for(WAIT, |r| count_unique(r).0 == 30),
        "the good files were replayed"
    );
    assert!(folder_bytes(&dir.join("corrupt"), "reason") > 0);
    let corrupt = std::fs::read_dir(dir.join("corrupt")).unwrap().count();
    assert_eq!(corrupt, 6, "each damaged file with its reason");
    log.flush().unwrap();
    assert!(log.stats().is_balanced());
}

/// Review finding: while a partial drain merged, capturing threads saw room
/// the put-back then overfilled, so the buffer grew past its capacity under
/// sustained overload (5,000+ records at capacity 1,000 within seconds).
#[test]
fn the_buffer_bound_holds_while_two_threads_outpace_a_slow_output() {
    let server = FaultServer::start();
    server.set_default(Fault::Slow(Duration::from_millis(5)));
    let log = background(&server.url, settings().batch_size(100))
        .capacity(1000)
        .overflow(aitrace_core::OverflowPolicy::DropNewest)
        .try_build()
        .unwrap();
    // The bound holds to within 32 records per shard (the buffer's own rule).
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    let shards = (cores * 2).next_power_of_two().clamp(4, 64);
    let bound = 1000 + 32 * shards;
    let stop = AtomicBool::new(false);
    let most = std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) && i < 20_000_000 {
                    log.info("burst").field("i", i).emit();
                    i += 1;
                }
            });
        }
        let started = Instant::now();
        let mut most = 0;
        while started.elapsed() < Duration::from_secs(3) {
            most = most.max(log.len());
            std::thread::yield_now();
        }
        stop.store(true, Ordering::Relaxed);
        most
    });
    assert!(most <= bound, "{most} buffered, bound {bound}");
    let _ = log.shutdown(Duration::from_secs(2));
    assert!(log.stats().is_balanced());
}

/// Review finding: a large backlog at the shutdown deadline was spooled one
/// fsync'd file per batch, taking 16 s past a 300 ms timeout.
#[test]
fn a_large_backlog_at_the_deadline_is_spooled_within_the_timeout() {
    let server = FaultServer::start();
    server.set_default(Fault::Hang);
    let spool = tempfile::tempdir().unwrap();
    let log = background(
        &server.url,
        settings().batch_size(2).spool_dir(spool.path()),
    )
    .output(http(&server.url, Duration::from_secs(30)))
    .capacity(100_000)
    .shutdown_timeout(Duration::from_millis(300))
    .try_build()
    .unwrap();
    emit(&log, 30_000);
    let started = Instant::now();
    drop(log);
    assert!(
        started.elapsed() < Duration::from_millis(300) + Duration::from_secs(2),
        "dropping took {:?}",
        started.elapsed()
    );
    // Two outputs (the hung server twice), everything in the spool.
    assert_eq!(spooled_lines(spool.path()), 60_000);
}

/// Review finding: a flush waited for the buffer to be empty, which under
/// steady load never happens, so it timed out although everything captured
/// before it had been delivered.
#[test]
fn a_flush_under_steady_load_waits_only_for_what_came_before() {
    let server = FaultServer::start();
    server.set_default(Fault::Slow(Duration::from_millis(2)));
    let log = background(
        &server.url,
        settings()
            .batch_size(100)
            .flush_interval(Duration::from_millis(5)),
    )
    .capacity(2000)
    .try_build()
    .unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && i < 50_000_000 {
                log.info("steady").field("i", i).emit();
                i += 1;
            }
        });
        for i in 0..10 {
            log.info("before_flush").field("i", i).emit();
        }
        let started = Instant::now();
        let flushed = log.flush_timeout(Duration::from_secs(10));
        stop.store(true, Ordering::Relaxed);
        assert!(flushed.is_ok(), "{flushed:?} after {:?}", started.elapsed());
    });
    let before = server
        .records()
        .iter()
        .filter(|r| r["__tracer_meta__"]["event"] == "before_flush")
        .count();
    assert_eq!(before, 10, "all of them were delivered when flush returned");
}

/// Review finding: `Duration::MAX` (a natural "forever") overflowed an
/// `Instant` and panicked, on the application thread or the delivery thread.
#[test]
fn durations_meaning_forever_do_not_panic() {
    let server = FaultServer::start();
    server.set_down(true);
    let log = background(
        &server.url,
        settings()
            .flush_interval(Duration::MAX)
            .retry(RetryPolicy::none().max_backoff(Duration::MAX))
            .breaker(
                BreakerPolicy::default()
                    .failure_threshold(1)
                    .cooldown(Duration::MAX),
            ),
    )
    .flush_timeout(Duration::MAX)
    .try_build()
    .unwrap();
    emit(&log, 5);
    let report = log.flush().unwrap();
    assert_eq!(
        report.deliveries()[0].dropped(),
        5,
        "no spool: counted dropped"
    );
    emit(&log, 5);
    log.flush().unwrap(); // the breaker is open for "ever": dropped, counted
    let stats = log.stats();
    assert_eq!((stats.dropped, stats.captured), (10, 10));
    log.shutdown(Duration::MAX).unwrap();
}

/// Review finding: after a shutdown nothing drains the buffer, yet `Block`
/// made every capture into a full buffer wait its whole timeout.
#[test]
fn after_shutdown_block_drops_at_once() {
    let server = FaultServer::start();
    // What is left when the logger drops goes to this spool, not to
    // `$TMPDIR/aitrace-unsent-…`.
    let spool = tempfile::tempdir().unwrap();
    let log = background(&server.url, settings().spool_dir(spool.path()))
        .capacity(10)
        .overflow(aitrace_core::OverflowPolicy::Block(Duration::from_secs(2)))
        .try_build()
        .unwrap();
    log.shutdown(Duration::from_secs(1)).unwrap();
    let started = Instant::now();
    emit(&log, 50);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(log.stats().dropped_overflow > 0);
}

/// Batch vectors are reused once every output has delivered them: two
/// outputs, many small batches over several drains, each output gets every
/// record exactly once, with its own contents.
#[test]
fn two_outputs_get_every_record_once_while_batch_vectors_are_reused() {
    let (a, b) = (FaultServer::start(), FaultServer::start());
    let log = BufferedLogger::builder()
        .output(http(&a.url, Duration::from_secs(2)))
        .output(http(&b.url, Duration::from_secs(2)))
        .delivery(
            Background::new()
                .batch_size(10)
                .flush_interval(Duration::from_secs(3600)),
        )
        .flush_timeout(WAIT)
        .build();
    let mut want = Vec::new();
    for wave in 0..5 {
        for i in 0..200 {
            let n = wave * 1000 + i;
            log.info("work").field("n", n).emit();
            want.push(n);
        }
        log.flush().expect("flush");
    }
    for server in [&a, &b] {
        let mut got: Vec<i64> = server
            .records()
            .iter()
            .map(|r| r["n"].as_i64().expect("n"))
            .collect();
        got.sort_unstable();
        assert_eq!(got, want, "every record once, on {}", server.url);
    }
    assert_eq!(log.stats().delivered, 2 * want.len() as u64);
}

/// A background logger holding `n` records for a server that never
/// answers (each batch of 10 fails after 300 ms, without retries or spool).
fn hanging_logger(n: usize, flush_timeout: Duration) -> (FaultServer, BufferedLogger) {
    let server = FaultServer::start();
    server.set_default(Fault::Hang);
    let log = BufferedLogger::builder()
        .output(http(&server.url, Duration::from_millis(300)))
        .delivery(
            Background::new()
                .batch_size(10)
                .flush_interval(Duration::from_secs(3600))
                .retry(RetryPolicy::default().max_attempts(1)),
        )
        .flush_timeout(flush_timeout)
        .build();
    emit(&log, n);
    (server, log)
}

/// Waits until `n` records were dropped, then shuts down and checks the
/// shutdown's report says so.
fn shutdown_once_dropped(log: &BufferedLogger, n: u64) -> aitrace_core::FlushReport {
    let deadline = Instant::now() + WAIT;
    while log.stats().dropped < n {
        assert!(Instant::now() < deadline, "{:?}", log.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    let report = log.shutdown(Duration::from_secs(5)).expect("shutdown");
    let dropped: usize = report.deliveries().iter().map(|d| d.dropped()).sum();
    assert_eq!(dropped as u64, n, "{report:?}");
    report
}

/// A flush whose caller gave up (its timeout passed) must not take the
/// report of what happened next: the shutdown reports those records.
#[test]
fn a_shutdown_after_a_flush_timed_out_reports_what_was_dropped() {
    let (_server, log) = hanging_logger(25, Duration::from_millis(50));
    let err = log
        .flush()
        .expect_err("the flush gives up before the server times out");
    assert_eq!(err.kind(), ErrorKind::FlushTimedOut, "{err}");
    let report = shutdown_once_dropped(&log, 25);
    assert_eq!(report.records(), 25, "{report:?}");
}

/// The same for an async flush whose future is dropped while it waits.
#[test]
fn a_shutdown_after_a_dropped_flush_future_reports_what_was_dropped() {
    let (_server, log) = hanging_logger(25, WAIT);
    let mut future = Box::pin(log.flush_async());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(future.as_mut().poll(&mut cx).is_pending());
    drop(future);
    shutdown_once_dropped(&log, 25);
}

/// Without a spool, a shutdown (or the delivery guard) is a batch's last
/// chance: a failure that may pass is retried with the usual backoff until
/// the shutdown's deadline, not dropped at the first try. (A 503 answered
/// once made shutdown drop every record, within milliseconds.) With a
/// spool, what fails at shutdown goes to the spool at once, as before.
#[test]
fn a_shutdown_without_a_spool_retries_until_its_deadline() {
    let server = FaultServer::start();
    server.script([Fault::Status(503), Fault::Status(503)]);
    let log = BufferedLogger::builder()
        .output(http(&server.url, Duration::from_secs(2)))
        .delivery(
            Background::new()
                .flush_interval(Duration::from_secs(3600))
                .retry(
                    RetryPolicy::default()
                        .initial_backoff(Duration::from_millis(5))
                        .max_backoff(Duration::from_millis(20)),
                ),
        )
        .build();
    emit(&log, 50);
    let report = log.shutdown(WAIT).unwrap();
    assert_eq!(server.records().len(), 50, "{report}");
    assert_eq!(server.requests(), 3, "two 503s, then delivered");
    assert_eq!((report.delivered(), report.dropped()), (50, 0), "{report}");
    let stats = log.stats();
    assert_eq!((stats.delivered, stats.dropped, stats.retried), (50, 0, 2));
    assert!(stats.is_balanced(), "{stats:?}");
}

/// An exporter that notes the name of each thread that calls it.
struct ThreadNames(Arc<std::sync::Mutex<Vec<String>>>);

impl aitrace_core::export::Export for ThreadNames {
    fn name(&self) -> String {
        "thread-names".to_owned()
    }

    fn export(
        &self,
        _batch: &aitrace_core::export::Batch<'_>,
    ) -> Result<aitrace_core::export::Accepted, aitrace_core::Error> {
        let name = std::thread::current().name().unwrap_or("").to_owned();
        self.0.lock().unwrap().push(name);
        Ok(aitrace_core::export::Accepted::all())
    }
}

/// `flush_keep` sent its copy from the calling thread, around the
/// delivery thread: an application thread doing I/O in background mode,
/// and two threads in one exporter at once (its own sender's and the
/// caller's). The copy goes to the output's sender thread now, as every
/// send in background mode does, and the records stay buffered.
#[test]
fn flush_keep_in_background_mode_sends_from_the_output_s_own_thread() {
    let callers = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = BufferedLogger::builder()
        .output(Output::new(ThreadNames(callers.clone())))
        .delivery(settings())
        .flush_timeout(WAIT)
        .build();
    emit(&log, 5);
    let report = log.flush_keep().unwrap();
    assert_eq!((report.records(), report.delivered()), (5, 5), "{report}");
    assert_eq!(log.len(), 5, "kept in the buffer");
    let stats = log.stats();
    assert_eq!((stats.delivered, stats.buffered), (0, 5), "{stats:?}");
    assert!(stats.is_balanced(), "{stats:?}");
    let callers = callers.lock().unwrap().clone();
    assert_eq!(callers, ["aitrace-send-0"], "called only by its sender");
}

/// A copy goes the way a batch goes: an output that refuses what a part
/// holds gets it again in halves, and only the record at fault is
/// reported refused. Nothing is set aside or counted: the records stay
/// buffered, and the flush that takes them does that.
#[test]
fn flush_keep_splits_a_refused_copy_and_keeps_every_record_buffered() {
    let server = FaultServer::start();
    server.set_default(Fault::RefuseEvent(400, "bad".into()));
    let log = background(&server.url, settings()).try_build().unwrap();
    for i in 0..7 {
        log.info(if i == 2 { "bad" } else { "good" })
            .field("i", i)
            .emit();
    }
    let report = log.flush_keep().unwrap();
    assert_eq!((report.delivered(), report.rejected()), (6, 1), "{report}");
    assert_eq!(server.records().len(), 6);
    assert_eq!(log.len(), 7, "kept in the buffer");
    let stats = log.stats();
    assert_eq!((stats.delivered, stats.dropped), (0, 0), "{stats:?}");

    let report = log.flush().unwrap();
    assert_eq!((report.delivered(), report.rejected()), (6, 1), "{report}");
    let stats = log.stats();
    assert_eq!((stats.delivered, stats.rejected), (6, 1), "{stats:?}");
    assert_eq!(
        count_unique(&server.records()),
        (6, 6),
        "sent twice, as asked"
    );
}

/// A copy waits for the output's sender like any batch, and no longer than
/// the flush timeout: behind a send that hangs, `flush_keep` gives up in
/// time and leaves the buffer as it was.
#[test]
fn flush_keep_behind_a_hung_send_gives_up_at_the_flush_timeout() {
    let server = FaultServer::start();
    server.set_default(Fault::Hang);
    let spool = tempfile::tempdir().unwrap(); // for what is left at the end
    let log = BufferedLogger::builder()
        .output(http(&server.url, Duration::from_secs(30)))
        .delivery(settings().batch_size(100).spool_dir(spool.path()))
        .flush_timeout(Duration::from_millis(200))
        .shutdown_timeout(Duration::from_millis(200))
        .build();
    emit(&log, 5);
    log.trigger_flush();
    let deadline = Instant::now() + WAIT;
    while server.requests() == 0 {
        assert!(Instant::now() < deadline, "the first batch was never sent");
        std::thread::sleep(Duration::from_millis(5));
    }
    emit(&log, 5); // stays buffered: below the batch size, no interval
    let started = Instant::now();
    let err = log.flush_keep().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FlushTimedOut, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(log.len(), 5, "kept in the buffer");
    assert_eq!(server.requests(), 1, "the copy waited for the hung send");
}

/// Found in review: a copy went out before a retry waiting for the time a
/// server's `Retry-After` gave, so a 429 was answered at once by another
/// request. The copy now waits its turn like the retry: it is not sent, and
/// `flush_keep` says so.
#[test]
fn flush_keep_does_not_send_through_a_pause_the_server_asked_for() {
    let server = FaultServer::start();
    server.script([Fault::RetryAfter(429, "30".into())]);
    let log = background(&server.url, settings()).try_build().unwrap();
    emit(&log, 3);
    log.trigger_flush();
    let start = Instant::now();
    while log.stats().retried == 0 && start.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(log.stats().retried, 1, "the 429 put a retry in wait");
    emit(&log, 2);
    let err = log.flush_keep().unwrap_err();
    assert!(err.to_string().contains("asked for a pause"), "{err}");
    assert_eq!(server.requests(), 1, "nothing sent during the pause");
    assert_eq!(log.len(), 2, "the copy's records stay buffered");
}
