use std::collections::{BTreeSet, VecDeque};

use proptest::prelude::*;

use super::*;

#[test]
fn writes_lists_replays_in_order_and_evicts_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path().join("out"), 100).unwrap();
    assert_eq!(
        spool
            .write(b"{\"a\":1}\n{\"a\":2}\n", None)
            .unwrap()
            .evicted,
        0
    );
    assert_eq!(spool.write(b"{\"b\":1}\n", None).unwrap().evicted, 0);
    assert_eq!(spool.pending(), 3);
    // A later process sees the same files, oldest first.
    drop(spool);
    let mut again = Spool::open(dir.path().join("out"), 100).unwrap();
    assert_eq!((again.pending(), again.recovered()), (3, 3));
    let (id, records) = again.oldest().unwrap();
    assert_eq!(records, 2);
    assert_eq!(again.read(id).unwrap(), b"{\"a\":1}\n{\"a\":2}\n".to_vec());
    assert_eq!(again.remove(id), Some(2));
    assert_eq!(again.oldest().unwrap().1, 1);
    // Room is made by evicting the oldest.
    let mut big = vec![b'1'; 95];
    big.push(b'\n');
    assert_eq!(again.write(&big, None).unwrap().evicted, 1);
    assert_eq!(again.pending(), 1);
    assert!(again.write(&[b'2'; 200], None).is_err());
    let (big_one, _) = again.oldest().unwrap();
    assert_eq!(again.remove(big_one), Some(1));
    again.write(b"{\"z\":1}\n", None).unwrap();
    let (id, _) = again.oldest().unwrap();
    assert_eq!(again.reject(id, "HTTP 400: bad"), Some(1));
    assert!(again.is_empty());
    let rejected: Vec<_> = std::fs::read_dir(dir.path().join("out/rejected"))
        .unwrap()
        .collect();
    assert_eq!(rejected.len(), 2, "the batch and its reason");
}

#[test]
fn a_file_being_replayed_is_never_evicted() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path().to_path_buf(), 30).unwrap();
    spool.write(b"{\"a\":1}\n", None).unwrap(); // 8 bytes
    spool.write(b"{\"b\":1}\n", None).unwrap();
    let (replaying, _) = spool.oldest().unwrap();
    // 16 bytes need room: the oldest file is in flight, so the next goes.
    let written = spool
        .write(b"{\"c\":1}\n{\"c\":2}\n", Some(replaying))
        .unwrap();
    assert_eq!(written.evicted, 1);
    assert_eq!(spool.read(replaying).unwrap(), b"{\"a\":1}\n".to_vec());
    assert_eq!(spool.remove(replaying), Some(1));
    assert_eq!(spool.pending(), 2);
}

#[test]
fn leftover_tmp_files_are_removed_and_damaged_files_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.tmp"), b"half").unwrap();
    std::fs::write(dir.path().join("1-torn.jsonl"), b"{\"a\":1}\n{\"a\":").unwrap();
    std::fs::write(dir.path().join("2-junk.jsonl"), b"\x00\x01garbage\n").unwrap();
    std::fs::write(dir.path().join("3-empty.jsonl"), b"").unwrap();
    std::fs::write(dir.path().join("4-good.jsonl"), b"{\"ok\":true}\n").unwrap();
    let mut spool = Spool::open(dir.path().to_path_buf(), 100).unwrap();
    assert!(!dir.path().join("x.tmp").exists());
    assert_eq!(spool.pending(), 1, "the good file is still replayed");
    let quarantined = spool.take_quarantined();
    assert_eq!(quarantined.len(), 3, "{quarantined:?}");
    assert!(quarantined.iter().any(|q| q.reason.contains("not ended")));
    assert!(quarantined.iter().any(|q| q.reason.contains("not JSON")));
    let corrupt = std::fs::read_dir(dir.path().join(CORRUPT_DIR))
        .unwrap()
        .count();
    assert_eq!(corrupt, 6, "each file with its reason");
    // Reopening does not see them again.
    let mut again = Spool::open(dir.path().to_path_buf(), 100).unwrap();
    assert!(again.take_quarantined().is_empty());
}

#[test]
fn rejected_batches_stay_within_their_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path().to_path_buf(), 400).unwrap(); // rejected/ holds 100
    let batch = b"{\"n\":\"0123456789012345678901234567890123456789\"}\n"; // 49 bytes
    for _ in 0..10 {
        spool.write_rejected(batch, "HTTP 401: bad key").unwrap();
    }
    assert!(spool.rejected_bytes() <= 100);
    let kept = std::fs::read_dir(dir.path().join(REJECTED_DIR))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "jsonl")
        .count();
    assert_eq!(kept, 2);
    // A later process knows what is there and keeps the bound.
    drop(spool);
    let mut again = Spool::open(dir.path().to_path_buf(), 400).unwrap();
    assert_eq!(again.rejected_bytes(), 98);
    again.write_rejected(batch, "again").unwrap();
    assert!(again.rejected_bytes() <= 100);
}

#[test]
fn a_second_owner_takes_a_subfolder_that_the_next_owner_adopts() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("out");
    let mut first = Spool::open(main.clone(), 1000).unwrap();
    assert!(first.busy().is_none());
    first.write(b"{\"a\":1}\n", None).unwrap();
    // The folder is owned: the second takes extra-1 and sees none of its files.
    let mut second = Spool::open(main.clone(), 1000).unwrap();
    let busy = second.busy().expect("the folder is owned");
    assert_eq!(busy.asked, main);
    assert_eq!(busy.owner, Some(std::process::id().to_string()));
    assert_eq!(second.dir(), main.join("extra-1"));
    assert_eq!(second.recovered(), 0);
    second.write(b"{\"b\":1}\n{\"b\":2}\n", None).unwrap();
    // A third takes extra-2.
    let third = Spool::open(main.clone(), 1000).unwrap();
    assert_eq!(third.dir(), main.join("extra-2"));
    // The second ends; the next owner of the main folder adopts its batches,
    // but not those of extra-2, whose owner is alive.
    drop(second);
    drop(first);
    let next = Spool::open(main.clone(), 1000).unwrap();
    assert!(next.busy().is_none());
    assert_eq!((next.recovered(), next.pending()), (3, 3));
    assert_eq!(bytes_in(&main.join("extra-1")), 0);
    drop(third);
}

/// A spool that cannot open is configuration, found when the logger is
/// built (`Builder::try_build`): a `ConfigError` of kind `Io` naming the
/// folder, whatever went wrong.
#[test]
fn a_spool_that_cannot_open_is_a_config_error_of_kind_io() {
    use std::error::Error as _;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let Err(err) = Spool::open(file.join("out"), 100) else {
        panic!("a spool folder under a file was opened");
    };
    assert_eq!(err.kind(), crate::ErrorKind::Io);
    let asked = format!(
        "cannot create spool folder {}: ",
        file.join("out").display()
    );
    assert!(err.to_string().starts_with(&asked), "{err}");
    assert!(err.source().is_some());
    // Every folder taken: its own and each `extra-N`.
    let main = dir.path().join("busy");
    let _owners: Vec<Spool> = (0..=MAX_EXTRA)
        .map(|_| Spool::open(main.clone(), 100).unwrap())
        .collect();
    let Err(err) = Spool::open(main.clone(), 100) else {
        panic!("a spool folder was opened with every subfolder in use");
    };
    assert_eq!(err.kind(), crate::ErrorKind::Io);
    assert_eq!(
        err.to_string(),
        format!(
            "spool folder {} and its 16 extra-N subfolders: all in use by other processes",
            main.display()
        )
    );
}

/// Bytes of batch files in a spool's subfolder.
fn bytes_in(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
                .map(|e| e.metadata().unwrap().len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn corrupt_files_stay_within_their_bound() {
    let dir = tempfile::tempdir().unwrap();
    let torn = b"{\"n\":\"0123456789012345678901234567890123456789\"}\n{\"n\""; // 53 bytes
    let mut quarantined = 0;
    // Damaged files found by three processes in turn, and one found at replay.
    for round in 0..3 {
        for i in 0..4 {
            std::fs::write(dir.path().join(format!("{round}-{i}.jsonl")), torn).unwrap();
        }
        let mut spool = Spool::open(dir.path().to_path_buf(), 400).unwrap(); // corrupt/ holds 100
        quarantined += spool.take_quarantined().len();
        assert!(bytes_in(&dir.path().join(CORRUPT_DIR)) <= 100);
        spool.write(b"{\"a\":1}\n", None).unwrap();
        let (id, _) = spool.oldest().unwrap();
        std::fs::write(&spool.files[0].path, torn).unwrap();
        assert!(matches!(spool.read(id), Err(Unreadable::Corrupt(_))));
        quarantined += spool.take_quarantined().len();
        assert!(bytes_in(&dir.path().join(CORRUPT_DIR)) <= 100);
    }
    assert_eq!(quarantined, 15, "each damaged file is reported");
    // The newest are kept, each with its reason; the oldest were deleted.
    let kept: Vec<PathBuf> = std::fs::read_dir(dir.path().join(CORRUPT_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let batches = kept.iter().filter(|p| p.extension().unwrap() == "jsonl");
    assert_eq!(batches.count(), 1, "{kept:?}");
    assert_eq!(kept.len(), 2, "the batch and its reason: {kept:?}");
    // A file larger than the bound is deleted, not kept.
    std::fs::write(dir.path().join("9-big.jsonl"), [b'x'; 200]).unwrap();
    let mut spool = Spool::open(dir.path().to_path_buf(), 400).unwrap();
    assert_eq!(spool.take_quarantined().len(), 1);
    assert!(!dir.path().join("9-big.jsonl").exists());
    assert!(bytes_in(&dir.path().join(CORRUPT_DIR)) <= 100);
}

// ---- The model-based test, in the manner of Vector's disk buffer tests ----

#[derive(Clone, Debug)]
enum Damage {
    Truncate,
    Garbage,
    Delete,
}

#[derive(Clone, Debug)]
enum Op {
    Write(u8),
    ReplayOk,
    ReplayFail,
    /// The server answered 413: the oldest file is split in two.
    Split,
    Reject,
    Restart,
    Damage(usize, Damage),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..6).prop_map(Op::Write),
        3 => Just(Op::ReplayOk),
        1 => Just(Op::ReplayFail),
        1 => Just(Op::Split),
        1 => Just(Op::Reject),
        1 => Just(Op::Restart),
        1 => (0usize..8, prop_oneof![Just(Damage::Truncate), Just(Damage::Garbage), Just(Damage::Delete)])
            .prop_map(|(i, d)| Op::Damage(i, d)),
    ]
}

/// A batch as the model knows it: its record ids, and whether its file was
/// damaged (so reading it must fail).
#[derive(Clone, Debug)]
struct Batch {
    records: Vec<u32>,
    damaged: Option<bool>, // Some(true): corrupt, Some(false): deleted
}

fn lines(records: &[u32]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(format!("{{\"r\":{r}}}\n").as_bytes()); // 11 bytes each
    }
    out
}

fn ids(bytes: &[u8]) -> Vec<u32> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice::<serde_json::Value>(l).unwrap()["r"]
                .as_u64()
                .unwrap() as u32
        })
        .collect()
}

#[derive(Default)]
struct Books {
    written: u64,
    delivered: BTreeSet<u32>,
    evicted: u64,
    rejected: u64,
    lost: u64, // corrupt or gone
}

const MAX_BYTES: u64 = 11 * 12;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_spool_matches_its_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path().to_path_buf(), MAX_BYTES).unwrap();
        let mut model: VecDeque<Batch> = VecDeque::new();
        let mut books = Books::default();
        let mut next_record = 1000u32; // four digits: every line is 11 bytes
        for op in ops {
            match op {
                Op::Write(n) => {
                    let records: Vec<u32> = (0..u32::from(n)).map(|i| next_record + i).collect();
                    next_record += u32::from(n);
                    let written = spool.write(&lines(&records), None).unwrap();
                    books.written += records.len() as u64;
                    // The model evicts the oldest whole batches to make room.
                    let mut bytes: u64 = model.iter().map(|b| b.records.len() as u64 * 11).sum();
                    let mut evicted = 0;
                    while bytes + records.len() as u64 * 11 > MAX_BYTES {
                        let old = model.pop_front().unwrap();
                        bytes -= old.records.len() as u64 * 11;
                        evicted += old.records.len() as u64;
                    }
                    prop_assert_eq!(written.evicted, evicted);
                    books.evicted += evicted;
                    model.push_back(Batch { records, damaged: None });
                }
                Op::ReplayOk | Op::ReplayFail | Op::Split | Op::Reject => {
                    let Some((id, count)) = spool.oldest() else {
                        prop_assert!(model.is_empty());
                        continue;
                    };
                    let front = model.front().unwrap().clone();
                    prop_assert_eq!(count, front.records.len() as u64);
                    match (spool.read(id), front.damaged) {
                        (Ok(bytes), None) => {
                            prop_assert_eq!(ids(&bytes), front.records.clone());
                            match op {
                                Op::ReplayOk => {
                                    prop_assert_eq!(spool.remove(id), Some(count));
                                    for r in &front.records {
                                        prop_assert!(books.delivered.insert(*r), "record {} delivered twice", r);
                                    }
                                    model.pop_front();
                                }
                                Op::Split if front.records.len() > 1 => {
                                    let half = front.records.len() / 2;
                                    let (a, b) = front.records.split_at(half);
                                    spool.split(id, &lines(a), &lines(b)).unwrap();
                                    model.pop_front();
                                    model.push_front(Batch { records: b.to_vec(), damaged: None });
                                    model.push_front(Batch { records: a.to_vec(), damaged: None });
                                }
                                Op::Reject => {
                                    prop_assert_eq!(spool.reject(id, "HTTP 400"), Some(count));
                                    books.rejected += count;
                                    model.pop_front();
                                }
                                _ => {} // the send failed: the file stays
                            }
                        }
                        (Err(Unreadable::Corrupt(_)), Some(true)) | (Err(Unreadable::Gone), Some(false)) => {
                            books.lost += count;
                            model.pop_front();
                        }
                        (got, expected) => prop_assert!(false, "read gave {:?}, model says {:?}", got.map(|b| b.len()), expected),
                    }
                }
                Op::Restart => {
                    drop(spool);
                    spool = Spool::open(dir.path().to_path_buf(), MAX_BYTES).unwrap();
                    let corrupt = model.iter().filter(|b| b.damaged == Some(true)).count();
                    prop_assert_eq!(spool.take_quarantined().len(), corrupt);
                    books.lost += model.iter().filter(|b| b.damaged.is_some()).map(|b| b.records.len() as u64).sum::<u64>();
                    model.retain(|b| b.damaged.is_none());
                    prop_assert_eq!(spool.recovered(), model.iter().map(|b| b.records.len() as u64).sum::<u64>());
                }
                Op::Damage(k, damage) => {
                    if model.is_empty() {
                        continue;
                    }
                    let k = k % model.len();
                    if model[k].damaged.is_some() {
                        continue;
                    }
                    let path = spool.files[k].path.clone();
                    match damage {
                        Damage::Truncate => {
                            let bytes = std::fs::read(&path).unwrap();
                            std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
                        }
                        Damage::Garbage => {
                            let bytes = std::fs::read(&path).unwrap();
                            let junk: Vec<u8> = bytes.iter().map(|&b| if b == b'\n' { b } else { b'#' }).collect();
                            std::fs::write(&path, junk).unwrap();
                        }
                        Damage::Delete => std::fs::remove_file(&path).unwrap(),
                    }
                    model[k].damaged = Some(!matches!(damage, Damage::Delete));
                }
            }
            // The books balance after every step: nothing lost uncounted.
            let pending: u64 = model.iter().map(|b| b.records.len() as u64).sum();
            prop_assert_eq!(spool.pending(), pending);
            prop_assert_eq!(
                books.written,
                books.delivered.len() as u64 + books.evicted + books.rejected + books.lost + pending
            );
            prop_assert!(spool.total_bytes <= MAX_BYTES);
        }
    }
}
