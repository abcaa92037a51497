//! The spool folder against real processes: two processes on one folder
//! (two replicas, or a restart while the old process still drains), one
//! that dies with records spooled, a folder that cannot be written, and the
//! totals of drops said at exit. Each child is this test binary run again
//! with one ignored test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output as ProcessOutput, Stdio};
use std::time::{Duration, Instant};

use aitrace_core::{Background, BufferedLogger, Direct, Level, OnFailure, Output, RetryPolicy};
use aitrace_testkit::{Answer, Fault, FaultServer, IngestServer, count_unique, dead_url};

const CHILD_DIR: &str = "SPOOL_CHILD_DIR";
const CHILD_URL: &str = "SPOOL_CHILD_URL";
const CHILD_RECORDS: &str = "SPOOL_CHILD_RECORDS";
const CHILD_MODE: &str = "SPOOL_CHILD_MODE";
const CHILD_GO: &str = "SPOOL_CHILD_GO";
const CHILD_BARRIER: &str = "SPOOL_CHILD_BARRIER";

fn child(test: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--ignored", "--nocapture"])
        .env_remove("AITRACE_SPOOL_DIR")
        .env_remove("LOG_TRG")
        .env_remove("AITRACE_LEVEL")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits up to `timeout` for `done`; whether it came.
fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// One replica: captures `SPOOL_CHILD_RECORDS` records (with record ids)
/// for `SPOOL_CHILD_URL`, spooling in `SPOOL_CHILD_DIR`, once the go file
/// exists (so both replicas start together); each then waits, holding its
/// spool folder, until both hold one (a file each in `SPOOL_CHILD_BARRIER`),
/// so the two always overlap. Modes: `spool` (the server is
/// down: spool everything, then exit), `die` (the same, then abort with its
/// records spooled) and `drain` (replay what its spool holds, then exit).
#[test]
#[ignore = "a child process of two_processes_on_one_spool_folder_deliver_each_record_once"]
fn spool_child() {
    let (dir, url, mode) = (env(CHILD_DIR), env(CHILD_URL), env(CHILD_MODE));
    let n: u64 = env(CHILD_RECORDS).parse().unwrap();
    let go = PathBuf::from(env(CHILD_GO));
    assert!(
        wait_until(Duration::from_secs(20), || go.exists()),
        "no go file"
    );
    let log = BufferedLogger::builder()
        .output(Output::http(&url).unwrap())
        .delivery(
            Background::new()
                .batch_size(100)
                .retry(RetryPolicy::none())
                .spool_dir(&dir),
        )
        .record_ids(true)
        .min_level(Level::Info)
        .try_build()
        .unwrap();
    let barrier = PathBuf::from(env(CHILD_BARRIER));
    std::fs::write(barrier.join(std::process::id().to_string()), b"").unwrap();
    let both = wait_until(Duration::from_secs(20), || {
        std::fs::read_dir(&barrier).map_or(0, Iterator::count) >= 2
    });
    assert!(both, "the other replica did not open its spool");
    for i in 0..n {
        log.info("work")
            .field("i", i)
            .field("pid", u64::from(std::process::id()))
            .emit();
    }
    match mode.as_str() {
        "die" => {
            let spooled = wait_until(Duration::from_secs(20), || log.stats().spooled == n);
            assert!(spooled, "{:?}", log.stats());
            println!("DIED with {n} records spooled");
            std::process::abort(); // no destructor runs: the lock dies with the process
        }
        "drain" => {
            let drained = wait_until(Duration::from_secs(20), || {
                let s = log.stats();
                s.spool_pending == 0 && s.buffered == 0 && s.in_flight == 0
            });
            assert!(drained, "{:?}", log.stats());
        }
        _ => {}
    }
    log.shutdown(Duration::from_secs(10)).ok();
    let s = log.stats();
    println!(
        "STATS spooled={} delivered={} replayed={} dropped={} pending={}",
        s.spooled, s.delivered, s.replayed, s.dropped, s.spool_pending
    );
    assert!(s.is_balanced(), "{s:?}");
}

/// Starts two children with these modes, lets them go together, and waits
/// for both.
fn run_pair(dir: &Path, url: &str, records: u64, modes: [&str; 2]) -> Vec<ProcessOutput> {
    let go = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let go_path = go.to_path_buf();
    go.close().unwrap(); // the children wait for it to exist again
    let barrier = tempfile::tempdir().unwrap();
    let children: Vec<Child> = modes
        .iter()
        .map(|mode| {
            child("spool_child")
                .env(CHILD_DIR, dir)
                .env(CHILD_URL, url)
                .env(CHILD_RECORDS, records.to_string())
                .env(CHILD_MODE, mode)
                .env(CHILD_GO, &go_path)
                .env(CHILD_BARRIER, barrier.path())
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(&go_path, b"go").unwrap();
    let outputs = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let _ = std::fs::remove_file(&go_path);
    outputs
}

fn text(out: &ProcessOutput) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn two_processes_on_one_spool_folder_deliver_each_record_once() {
    const N: u64 = 600;
    let server = FaultServer::start();
    let spool = tempfile::tempdir().unwrap();
    // The server is down: two replicas spool into one folder; one of them
    // dies (abort) with its records spooled.
    server.set_down(true);
    let first = run_pair(spool.path(), &server.url, N, ["spool", "die"]);
    assert!(first[0].status.success(), "{}", text(&first[0]));
    assert!(
        String::from_utf8_lossy(&first[1].stdout).contains("DIED with"),
        "{}",
        text(&first[1])
    );
    // Both held the folder at once, so exactly one was told it is in use
    // and spooled to `extra-N` instead.
    let told_first = told_in_use(&first);
    assert_eq!(
        told_first,
        1,
        "{:#?}",
        first.iter().map(text).collect::<Vec<_>>()
    );
    // The server is back, slow enough that both replicas are replaying at
    // once: two new processes start on the same folder.
    server.set_down(false);
    server.set_default(Fault::Slow(Duration::from_millis(15)));
    let second = run_pair(spool.path(), &server.url, 50, ["drain", "drain"]);
    for out in &second {
        assert!(out.status.success(), "{}", text(out));
    }
    let expected = (2 * N + 2 * 50) as usize;
    server.wait_for(Duration::from_secs(10), |r| count_unique(r).0 >= expected);
    let records = server.records();
    let (unique, duplicates) = count_unique(&records);
    let said: Vec<String> = second.iter().map(text).collect();
    assert_eq!(
        duplicates, 0,
        "records delivered twice by two owners of one spool folder\n{said:#?}"
    );
    assert_eq!(unique, expected, "records lost\n{said:#?}");
    // The second process to start was told, once, where it spools.
    assert_eq!(told_in_use(&second), 1, "{said:#?}");
}

/// How many of these children said the spool folder was in use.
fn told_in_use(children: &[ProcessOutput]) -> usize {
    children
        .iter()
        .map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .matches("is in use by")
                .count()
        })
        .sum()
}

/// A child whose only output's server is down and which has no spool:
/// every batch is dropped, far more often than the once-a-minute line says.
#[test]
#[ignore = "a child process of the_exit_report_gives_the_total_of_drops"]
fn dropping_child() {
    let url = env(CHILD_URL);
    let log = BufferedLogger::builder()
        .output(Output::http(&url).unwrap())
        .delivery(Background::new().batch_size(10).retry(RetryPolicy::none()))
        .min_level(Level::Info)
        .try_build()
        .unwrap();
    for i in 0..500u64 {
        log.info("work").field("i", i).emit();
        if i % 10 == 9 {
            let _ = log.flush();
        }
    }
    drop(log);
}

#[test]
fn the_exit_report_gives_the_total_of_drops() {
    let out = child("dropping_child")
        .env(CHILD_URL, dead_url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = stderr.matches("dropped").count();
    assert!(lines >= 1, "{}", text(&out));
    assert!(
        stderr.contains("500 records dropped in all"),
        "no total of drops at exit\n{}",
        text(&out)
    );
}

/// A child with delivery on the calling thread whose server refuses every
/// batch for good: each is set aside in the fallback file and counted as
/// dropped, far more often than the once-a-minute line says.
#[test]
#[ignore = "a child process of the_exit_report_of_direct_delivery_gives_the_total_of_drops"]
fn refused_child() {
    let log = BufferedLogger::builder()
        .output(Output::http(&env(CHILD_URL)).unwrap())
        .delivery(Direct::new().on_failure(OnFailure::FallbackFile(env(CHILD_DIR).into())))
        .min_level(Level::Info)
        .build();
    for i in 0..500u64 {
        log.info("work").field("i", i).emit();
        if i % 10 == 9 {
            let report = log.flush().unwrap();
            assert_eq!(report.dropped(), 10, "{report}");
        }
    }
    drop(log);
}

#[test]
fn the_exit_report_of_direct_delivery_gives_the_total_of_drops() {
    let server = IngestServer::start(Answer::Status(403, "no".into()));
    let dir = tempfile::tempdir().unwrap();
    let fallback = dir.path().join("refused.jsonl");
    let out = child("refused_child")
        .env(CHILD_URL, &server.url)
        .env(CHILD_DIR, &fallback)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("500 records dropped in all"),
        "no total of drops at exit\n{}",
        text(&out)
    );
    let kept = std::fs::read_to_string(&fallback).unwrap();
    assert_eq!(
        kept.lines().count(),
        500,
        "every refused record is in the fallback file"
    );
}

/// A child that chooses direct delivery, with `AITRACE_SPOOL_DIR` set.
#[test]
#[ignore = "a child process of a_spool_folder_without_background_delivery_is_named_as_unused"]
fn direct_spool_child() {
    let log = BufferedLogger::builder()
        .output(Output::stdout())
        .delivery(Direct::new())
        .try_build()
        .unwrap();
    log.info("work").emit();
}

/// A spool is part of background delivery; set without it, it was ignored
/// without a word (the folder never made, no line on stderr). `Direct` has
/// no spool setting; the variable (or the 0.1 `Builder::spool_dir`, see
/// `delivery_mode.rs`) can still name one.
#[test]
fn a_spool_folder_without_background_delivery_is_named_as_unused() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let out = child("direct_spool_child")
        .env("AITRACE_SPOOL_DIR", &spool)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "spool folder {} not used: it takes background delivery",
            spool.display()
        )),
        "{}",
        text(&out)
    );
}

// ---- A spool folder that cannot be written fails try_build ----

/// Skips a test that cannot run here, with the reason printed; under CI
/// (`CI` set: it runs as root and can mount a tmpfs) it fails instead, so
/// that a test cannot pass there by skipping.
fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{why}: CI is set, so this test may not skip"
    );
    println!("skipped: {why}");
}

/// A tmpfs mounted for one test (root only), unmounted when dropped.
struct Mount {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mount {
    /// A small tmpfs, or why there cannot be one here.
    fn tmpfs(size: &str) -> Result<Mount, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(&path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Mount { path, _dir: dir })
    }

    fn remount_read_only(&self) -> Result<(), String> {
        let out = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.path)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// One URL for every logger of these tests, so each finds the output's
/// spool folder an earlier one made (its name comes from the URL).
const DOWN_URL: &str = "http://127.0.0.1:9/api/ingest";

fn spool_logger(dir: &Path) -> Result<BufferedLogger, aitrace_core::ConfigError> {
    BufferedLogger::builder()
        .output(Output::http(DOWN_URL).unwrap())
        .delivery(Background::new().spool_dir(dir))
        .try_build()
}

/// Makes `dir` (which holds the output's spool folder) unwritable: a
/// read-only mount when this runs as root (root ignores permission bits),
/// else permission bits. `None` when neither can be set up here (a failure
/// under CI).
fn unwritable_spool() -> Option<(PathBuf, Option<Mount>, Option<Writable>)> {
    let probe = tempfile::tempdir().unwrap();
    let ro = probe.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    set_mode(&ro, 0o500);
    let root = std::fs::write(ro.join("x"), b"x").is_ok();
    set_mode(&ro, 0o700);
    if !root {
        drop(spool_logger(&ro).unwrap()); // the output's folder exists
        for entry in std::fs::read_dir(&ro).unwrap() {
            set_mode(&entry.unwrap().path(), 0o500);
        }
        return Some((ro, None, Some(Writable(probe))));
    }
    let mount = match Mount::tmpfs("1m") {
        Ok(mount) => mount,
        Err(why) => {
            skip(&format!("running as root and {why}"));
            return None;
        }
    };
    drop(spool_logger(&mount.path).unwrap()); // the output's folder exists
    if let Err(why) = mount.remount_read_only() {
        skip(&format!("cannot remount read-only: {why}"));
        return None;
    }
    Some((mount.path.clone(), Some(mount), None))
}

/// A temporary folder whose subfolders are made writable again before it
/// is removed.
struct Writable(tempfile::TempDir);

impl Drop for Writable {
    fn drop(&mut self) {
        let dirs = walk(self.0.path());
        for dir in dirs {
            set_mode(&dir, 0o700);
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            dirs.extend(walk(&entry.path()));
        }
    }
    dirs
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn try_build_refuses_a_spool_folder_that_cannot_be_written() {
    let Some((dir, _mount, _temp)) = unwritable_spool() else {
        return;
    };
    let err = spool_logger(&dir).expect_err("a read-only spool folder was accepted");
    assert!(
        err.to_string().contains("cannot write"),
        "an unclear error: {err}"
    );
    // build() falls back to delivering without a spool.
    let log = BufferedLogger::builder()
        .output(Output::http(DOWN_URL).unwrap())
        .delivery(Background::new().spool_dir(&dir))
        .build();
    log.info("kept going").emit();
    assert_eq!(log.stats().captured, 1);
}

#[test]
fn try_build_refuses_a_spool_folder_on_a_full_disk() {
    let mount = match Mount::tmpfs("64k") {
        Ok(mount) => mount,
        Err(why) => {
            skip(&why);
            return;
        }
    };
    drop(spool_logger(&mount.path).unwrap()); // the output's folder exists
    // Fill the disk.
    let mut fill = std::fs::File::create(mount.path.join("fill")).unwrap();
    let block = vec![0u8; 4096];
    let full = (0..64).any(|_| std::io::Write::write_all(&mut fill, &block).is_err());
    assert!(full, "a 64k tmpfs took 256k");
    drop(fill);
    let err = spool_logger(&mount.path).expect_err("a spool on a full disk was accepted");
    assert!(
        err.to_string().contains("cannot write"),
        "an unclear error: {err}"
    );
}
