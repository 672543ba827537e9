//! The hash chain: how an event's hash is computed and how a run's stored rows are checked.
//!
//! Everything here is pure (no I/O, no SQL) so every backend shares one definition of what a
//! valid run is. A backend reads its rows verbatim into [`RawEvent`]s, its run record into a
//! [`RunHead`], and hands them to [`verify_chain`] together with a way to check blobs.
//!
//! # Encoding (format `airlock-audit-v1`)
//!
//! * Genesis: `prev_hash` of event 1 is `hex(sha256("airlock-audit-v1|genesis|" ‖ run_id))`.
//! * Event: `hash = hex(sha256(F("airlock-audit-v1|event") ‖ F(run_id) ‖ F(be64(seq)) ‖
//!   F(be64(ts_ms)) ‖ F(kind) ‖ F(payload) ‖ F(blobs) ‖ F(prev_hash)))` where
//!   `F(x) = be64(len(x)) ‖ x` (UTF-8 bytes for strings) and `be64` is an unsigned 64-bit
//!   big-endian integer. Every field is length-prefixed, so no two different tuples share an
//!   encoding. `payload` and `blobs` are the exact stored texts (JSON serialised once, at append);
//!   verification never re-serialises.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::blob::BlobRef;

/// Format tag mixed into every hash; bump it if the encoding ever changes.
pub const FORMAT: &str = "airlock-audit-v1";
/// Kind of the first event of every run (payload: the task).
pub const KIND_RUN_STARTED: &str = "run_started";
/// Kind of the last event of a sealed run (payload: the outcome).
pub const KIND_SEALED: &str = "sealed";

/// `prev_hash` of a run's first event.
pub fn genesis_hash(run_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(FORMAT.as_bytes());
    h.update(b"|genesis|");
    h.update(run_id.as_bytes());
    hex::encode(h.finalize())
}

/// The hashed fields of one event, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFields<'a> {
    pub run_id: &'a str,
    pub seq: u64,
    pub ts_ms: u64,
    pub kind: &'a str,
    /// The stored payload text, exactly as stored.
    pub payload: &'a str,
    /// The stored blob-list text (a JSON array of hashes), exactly as stored.
    pub blobs: &'a str,
    pub prev_hash: &'a str,
}

fn put(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// The hash of an event (see the module docs for the encoding).
pub fn event_hash(f: &EventFields<'_>) -> String {
    let mut h = Sha256::new();
    put(&mut h, format!("{FORMAT}|event").as_bytes());
    put(&mut h, f.run_id.as_bytes());
    put(&mut h, &f.seq.to_be_bytes());
    put(&mut h, &f.ts_ms.to_be_bytes());
    put(&mut h, f.kind.as_bytes());
    put(&mut h, f.payload.as_bytes());
    put(&mut h, f.blobs.as_bytes());
    put(&mut h, f.prev_hash.as_bytes());
    hex::encode(h.finalize())
}

/// The stored text of a blob list: a JSON array of hashes, in the order given.
pub fn encode_blobs(blobs: &[BlobRef]) -> String {
    let list: Vec<&str> = blobs.iter().map(BlobRef::as_str).collect();
    // Serialising a list of strings cannot fail; fall back to the obvious text anyway.
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".to_owned())
}

/// Parses a stored blob list; `None` if it is not a JSON array of valid hashes.
pub fn decode_blobs(text: &str) -> Option<Vec<BlobRef>> {
    let list: Vec<String> = serde_json::from_str(text).ok()?;
    list.into_iter()
        .map(|s| BlobRef::try_from(s).ok())
        .collect()
}

/// One event row exactly as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub seq: u64,
    pub ts_ms: u64,
    pub kind: String,
    pub payload: String,
    pub blobs: String,
    pub prev_hash: String,
    pub hash: String,
}

impl RawEvent {
    pub fn fields<'a>(&'a self, run_id: &'a str) -> EventFields<'a> {
        EventFields {
            run_id,
            seq: self.seq,
            ts_ms: self.ts_ms,
            kind: &self.kind,
            payload: &self.payload,
            blobs: &self.blobs,
            prev_hash: &self.prev_hash,
        }
    }
}

/// What the run record says about the chain (mutable, so it is checked against the chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunHead {
    pub head_seq: u64,
    pub head_hash: String,
    pub sealed: bool,
}

/// Result of checking one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobCheck {
    /// Present and its content hashes to its name.
    Intact,
    Missing,
    /// Present but its content does not hash to its name.
    Altered,
    /// Could not be read; the reason is an I/O error kind, never content.
    Unreadable(String),
}

/// One thing wrong with a run, in terms an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Problem {
    /// The stored hash is not the hash of the stored fields.
    HashMismatch { seq: u64 },
    /// The event's `prev_hash` is not the previous event's hash (or the genesis hash).
    BrokenLink { seq: u64 },
    /// Sequence numbers `first..=last` are absent.
    Missing { first: u64, last: u64 },
    /// A sequence number appears twice, or is 0.
    OutOfSequence { seq: u64 },
    /// The last event's seq differs from the head the run record holds.
    HeadMismatch { chain_seq: u64, recorded_seq: u64 },
    /// The last event's seq matches the run record but its hash does not.
    HeadHashMismatch { seq: u64 },
    /// Event 1 is not `run_started`.
    FirstEventKind,
    /// A `sealed` event is followed by more events.
    EventsAfterSeal { sealed_seq: u64, last_seq: u64 },
    /// The run record says sealed but the last event is not the seal.
    SealMissing { last_seq: u64 },
    /// The last event is a seal but the run record does not say sealed.
    SealNotRecorded { seq: u64 },
    /// The payload text is not JSON.
    PayloadMalformed { seq: u64 },
    /// The blob list text is not a JSON array of blob hashes.
    BlobListMalformed { seq: u64 },
    /// A referenced blob is absent (`seq` is the first event referencing it).
    BlobMissing { seq: u64, blob: BlobRef },
    /// A referenced blob's content does not hash to its name.
    BlobAltered { seq: u64, blob: BlobRef },
    /// A referenced blob could not be read.
    BlobUnreadable {
        seq: u64,
        blob: BlobRef,
        reason: String,
    },
    /// A stored row could not be decoded at all (wrong column types, negative numbers).
    MalformedRow { seq: Option<u64> },
    /// Events exist but the run's record is gone.
    RunRecordMissing,
}

impl Problem {
    /// The event the problem is about, if it is about one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Problem::HashMismatch { seq }
            | Problem::BrokenLink { seq }
            | Problem::OutOfSequence { seq }
            | Problem::HeadHashMismatch { seq }
            | Problem::SealNotRecorded { seq }
            | Problem::PayloadMalformed { seq }
            | Problem::BlobListMalformed { seq }
            | Problem::BlobMissing { seq, .. }
            | Problem::BlobAltered { seq, .. }
            | Problem::BlobUnreadable { seq, .. } => Some(*seq),
            Problem::Missing { first, .. } => Some(*first),
            Problem::HeadMismatch { chain_seq, .. } => Some(*chain_seq),
            Problem::FirstEventKind => Some(1),
            Problem::EventsAfterSeal { sealed_seq, .. } => Some(*sealed_seq),
            Problem::SealMissing { last_seq } => Some(*last_seq),
            Problem::MalformedRow { seq } => *seq,
            Problem::RunRecordMissing => None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::HashMismatch { seq } => {
                write!(f, "event {seq}: hash mismatch (content was edited)")
            }
            Problem::BrokenLink { seq: 1 } => write!(
                f,
                "event 1: does not link to the start of the run (events were reordered, \
                 inserted or replaced)"
            ),
            Problem::BrokenLink { seq } => write!(
                f,
                "event {seq}: does not link to event {} (events were reordered, inserted or \
                 replaced)",
                seq.saturating_sub(1)
            ),
            Problem::Missing { first, last } if first == last => {
                write!(f, "event {first} missing")
            }
            Problem::Missing { first, last } => write!(f, "events {first}..{last} missing"),
            Problem::OutOfSequence { seq } => write!(
                f,
                "event {seq}: out of sequence (duplicate or invalid sequence number)"
            ),
            Problem::HeadMismatch {
                chain_seq,
                recorded_seq,
            } => {
                let why = if chain_seq < recorded_seq {
                    "events truncated"
                } else {
                    "events added outside the audit store"
                };
                write!(
                    f,
                    "chain head is {chain_seq} but run records head {recorded_seq} ({why})"
                )
            }
            Problem::HeadHashMismatch { seq } => write!(
                f,
                "event {seq}: hash differs from the head the run records (tail was replaced)"
            ),
            Problem::FirstEventKind => write!(
                f,
                "event 1: is not \"{KIND_RUN_STARTED}\" (start of the run was replaced)"
            ),
            Problem::EventsAfterSeal {
                sealed_seq,
                last_seq,
            } => write!(
                f,
                "run was sealed at event {sealed_seq} but events continue to {last_seq}"
            ),
            Problem::SealMissing { last_seq } => write!(
                f,
                "run is marked sealed but its last event ({last_seq}) is not the seal \
                 (events truncated or not sealed)"
            ),
            Problem::SealNotRecorded { seq } => write!(
                f,
                "event {seq}: seals the run but the run is not marked sealed (run record was \
                 altered)"
            ),
            Problem::PayloadMalformed { seq } => {
                write!(f, "event {seq}: payload is not valid JSON")
            }
            Problem::BlobListMalformed { seq } => {
                write!(f, "event {seq}: blob list is malformed")
            }
            Problem::BlobMissing { seq, blob } => {
                write!(f, "event {seq}: blob {} missing", blob.short())
            }
            Problem::BlobAltered { seq, blob } => write!(
                f,
                "event {seq}: blob {} was modified (content does not match its hash)",
                blob.short()
            ),
            Problem::BlobUnreadable { seq, blob, reason } => write!(
                f,
                "event {seq}: blob {} could not be read ({reason})",
                blob.short()
            ),
            Problem::MalformedRow { seq: Some(seq) } => write!(
                f,
                "event {seq}: stored row is malformed (column types were altered)"
            ),
            Problem::MalformedRow { seq: None } => {
                write!(f, "an event row is malformed (column types were altered)")
            }
            Problem::RunRecordMissing => write!(
                f,
                "the run's record is missing but its events remain (run record was deleted)"
            ),
        }
    }
}

/// The outcome of verifying one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub run_id: String,
    /// Number of event rows found.
    pub events: u64,
    /// Whether the run record says the run is sealed.
    pub sealed: bool,
    /// Sequence number of the last event found (0 if none).
    pub head_seq: u64,
    /// Hash of the last event found (empty if none). Anchor this elsewhere to detect a
    /// wholesale rewrite, which a self-contained chain cannot.
    pub head_hash: String,
    pub problems: Vec<Problem>,
}

/// What a verified run amounts to: the three answers a reader (or a script) must tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainState {
    /// Every event links and the run ends in its seal: the record is complete.
    Sealed,
    /// Every event links but there is no seal yet: the run is still going, or its host died
    /// before sealing it. Nothing is known to be wrong, and nothing is known to be complete.
    Unsealed,
    /// Something was edited, deleted, reordered or truncated (see the report's problems).
    Broken,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Sealed, unsealed or broken.
    pub fn state(&self) -> ChainState {
        match (self.ok(), self.sealed) {
            (false, _) => ChainState::Broken,
            (true, true) => ChainState::Sealed,
            (true, false) => ChainState::Unsealed,
        }
    }

    /// Whether the chain ends at `expected`, a head hash anchored elsewhere (the `audit head`
    /// that `airlock run` prints): the one check that also catches a chain rewritten
    /// consistently from the start. Surrounding whitespace and hex case are ignored; an empty
    /// chain matches nothing.
    pub fn head_is(&self, expected: &str) -> bool {
        !self.head_hash.is_empty() && self.head_hash.eq_ignore_ascii_case(expected.trim())
    }
}

/// Checks a run's stored rows against each other, against the run record, and against the blob
/// store. `events` may come in any order; every problem found is reported, not just the first.
/// `head` is `None` when the run record is gone (which is itself reported).
pub fn verify_chain(
    run_id: &str,
    head: Option<&RunHead>,
    events: &[RawEvent],
    mut check_blob: impl FnMut(&BlobRef) -> BlobCheck,
) -> VerifyReport {
    let mut rows: Vec<&RawEvent> = events.iter().collect();
    rows.sort_by_key(|e| e.seq);

    let genesis = genesis_hash(run_id);
    let mut problems = Vec::new();
    if head.is_none() {
        problems.push(Problem::RunRecordMissing);
    }
    let mut expected: u64 = 1;
    // `None` after a gap: what the next event should link to is unknown.
    let mut prev_hash: Option<&str> = Some(&genesis);
    let mut first_seal: Option<u64> = None;
    let mut seen_blobs: HashSet<BlobRef> = HashSet::new();
    let mut blob_uses: Vec<(u64, BlobRef)> = Vec::new();

    for ev in &rows {
        if ev.seq < expected {
            problems.push(Problem::OutOfSequence { seq: ev.seq });
            continue;
        }
        if ev.seq > expected {
            problems.push(Problem::Missing {
                first: expected,
                last: ev.seq - 1,
            });
            prev_hash = None;
        }
        if event_hash(&ev.fields(run_id)) != ev.hash {
            problems.push(Problem::HashMismatch { seq: ev.seq });
        }
        if prev_hash.is_some_and(|p| p != ev.prev_hash) {
            problems.push(Problem::BrokenLink { seq: ev.seq });
        }
        if ev.seq == 1 && ev.kind != KIND_RUN_STARTED {
            problems.push(Problem::FirstEventKind);
        }
        if ev.kind == KIND_SEALED && first_seal.is_none() {
            first_seal = Some(ev.seq);
        }
        if serde_json::from_str::<serde::de::IgnoredAny>(&ev.payload).is_err() {
            problems.push(Problem::PayloadMalformed { seq: ev.seq });
        }
        match decode_blobs(&ev.blobs) {
            Some(list) => {
                for blob in list {
                    if seen_blobs.insert(blob.clone()) {
                        blob_uses.push((ev.seq, blob));
                    }
                }
            }
            None => problems.push(Problem::BlobListMalformed { seq: ev.seq }),
        }
        prev_hash = Some(&ev.hash);
        expected = ev.seq.saturating_add(1);
    }

    let last = rows.last();
    let chain_seq = last.map_or(0, |e| e.seq);
    if rows.is_empty() {
        problems.push(Problem::Missing {
            first: 1,
            last: head.map_or(1, |h| h.head_seq.max(1)),
        });
    }
    if let Some(head) = head {
        if chain_seq != head.head_seq {
            problems.push(Problem::HeadMismatch {
                chain_seq,
                recorded_seq: head.head_seq,
            });
        } else if last.is_some_and(|e| e.hash != head.head_hash) {
            problems.push(Problem::HeadHashMismatch { seq: chain_seq });
        }
    }

    let last_is_seal = last.is_some_and(|e| e.kind == KIND_SEALED);
    if let Some(sealed_seq) = first_seal {
        if sealed_seq < chain_seq {
            problems.push(Problem::EventsAfterSeal {
                sealed_seq,
                last_seq: chain_seq,
            });
        }
    }
    let recorded_sealed = head.is_some_and(|h| h.sealed);
    if recorded_sealed && !last_is_seal {
        problems.push(Problem::SealMissing {
            last_seq: chain_seq,
        });
    }
    if head.is_some() && !recorded_sealed && last_is_seal {
        problems.push(Problem::SealNotRecorded { seq: chain_seq });
    }

    for (seq, blob) in blob_uses {
        match check_blob(&blob) {
            BlobCheck::Intact => {}
            BlobCheck::Missing => problems.push(Problem::BlobMissing { seq, blob }),
            BlobCheck::Altered => problems.push(Problem::BlobAltered { seq, blob }),
            BlobCheck::Unreadable(reason) => {
                problems.push(Problem::BlobUnreadable { seq, blob, reason })
            }
        }
    }

    VerifyReport {
        run_id: run_id.to_owned(),
        events: rows.len() as u64,
        sealed: recorded_sealed,
        head_seq: chain_seq,
        head_hash: last.map(|e| e.hash.clone()).unwrap_or_default(),
        problems,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    const RUN: &str = "run-1";

    /// Builds a valid chain the way a store would.
    fn build(kinds: &[&str], blobs: &[Vec<BlobRef>]) -> Vec<RawEvent> {
        let mut prev = genesis_hash(RUN);
        let mut out = Vec::new();
        for (i, kind) in kinds.iter().enumerate() {
            let seq = i as u64 + 1;
            let payload = format!("{{\"n\":{seq}}}");
            let blob_text = encode_blobs(blobs.get(i).map_or(&[][..], |b| &b[..]));
            let mut ev = RawEvent {
                seq,
                ts_ms: 1_700_000_000_000 + seq,
                kind: (*kind).to_owned(),
                payload,
                blobs: blob_text,
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            ev.hash = event_hash(&ev.fields(RUN));
            prev = ev.hash.clone();
            out.push(ev);
        }
        out
    }

    fn head_of(events: &[RawEvent], sealed: bool) -> RunHead {
        let last = events.last().unwrap();
        RunHead {
            head_seq: last.seq,
            head_hash: last.hash.clone(),
            sealed,
        }
    }

    fn intact(_: &BlobRef) -> BlobCheck {
        BlobCheck::Intact
    }

    fn rehash(ev: &mut RawEvent) {
        ev.hash = event_hash(&ev.fields(RUN));
    }

    #[test]
    fn pinned_encoding() {
        // These values pin the on-disk format: if they change, old audit logs stop verifying.
        assert_eq!(
            genesis_hash("r"),
            hex::encode(Sha256::digest(b"airlock-audit-v1|genesis|r"))
        );
        let f = EventFields {
            run_id: "r",
            seq: 1,
            ts_ms: 2,
            kind: "k",
            payload: "{}",
            blobs: "[]",
            prev_hash: "p",
        };
        let mut manual = Vec::new();
        for part in [
            &b"airlock-audit-v1|event"[..],
            b"r",
            &1u64.to_be_bytes(),
            &2u64.to_be_bytes(),
            b"k",
            b"{}",
            b"[]",
            b"p",
        ] {
            manual.extend_from_slice(&(part.len() as u64).to_be_bytes());
            manual.extend_from_slice(part);
        }
        assert_eq!(event_hash(&f), hex::encode(Sha256::digest(&manual)));
        assert_eq!(
            event_hash(&f),
            "09dd98861749a09da24db02801d8c9e9a07d35c7b5cf5d36fbdc0980414d8a3e"
        );
    }

    #[test]
    fn length_prefixing_separates_fields() {
        let a = EventFields {
            run_id: "r",
            seq: 1,
            ts_ms: 2,
            kind: "ab",
            payload: "c",
            blobs: "[]",
            prev_hash: "p",
        };
        let b = EventFields {
            kind: "a",
            payload: "bc",
            ..a
        };
        assert_ne!(event_hash(&a), event_hash(&b));
        let c = EventFields { run_id: "r2", ..a };
        assert_ne!(event_hash(&a), event_hash(&c));
    }

    #[test]
    fn blob_list_roundtrip() {
        let b = vec![BlobRef::of(b"x"), BlobRef::of(b"y")];
        assert_eq!(decode_blobs(&encode_blobs(&b)).unwrap(), b);
        assert_eq!(encode_blobs(&[]), "[]");
        assert!(decode_blobs("[\"../x\"]").is_none());
        assert!(decode_blobs("nope").is_none());
    }

    #[test]
    fn valid_chain_verifies() {
        let blob = BlobRef::of(b"shot");
        let ev = build(
            &["run_started", "proposal", "decision", "sealed"],
            &[vec![], vec![blob.clone()], vec![blob], vec![]],
        );
        let mut checked = 0;
        let r = verify_chain(RUN, Some(&head_of(&ev, true)), &ev, |_| {
            checked += 1;
            BlobCheck::Intact
        });
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!(checked, 1, "each blob is checked once");
        assert_eq!(r.events, 4);
        assert_eq!(r.head_seq, 4);
        assert_eq!(r.head_hash, ev[3].hash);
        assert!(r.sealed);
    }

    #[test]
    fn order_of_rows_does_not_matter() {
        let mut ev = build(&["run_started", "a", "b"], &[]);
        let head = head_of(&ev, false);
        ev.reverse();
        assert!(verify_chain(RUN, Some(&head), &ev, intact).ok());
    }

    #[test]
    fn edit_detected_at_its_seq() {
        let mut ev = build(&["run_started", "a", "b", "c"], &[]);
        let head = head_of(&ev, false);
        ev[2].payload = "{\"n\":99}".into();
        let r = verify_chain(RUN, Some(&head), &ev, intact);
        assert_eq!(r.problems, vec![Problem::HashMismatch { seq: 3 }]);
        assert_eq!(
            r.problems[0].to_string(),
            "event 3: hash mismatch (content was edited)"
        );
        // Rehashing the edit moves the break to the next link.
        rehash(&mut ev[2]);
        let r = verify_chain(RUN, Some(&head), &ev, intact);
        assert_eq!(r.problems, vec![Problem::BrokenLink { seq: 4 }]);
    }

    #[test]
    fn deletion_detected() {
        let mut ev = build(&["run_started", "a", "b", "c", "d", "e"], &[]);
        let head = head_of(&ev, false);
        ev.drain(3..5);
        let r = verify_chain(RUN, Some(&head), &ev, intact);
        assert_eq!(r.problems, vec![Problem::Missing { first: 4, last: 5 }]);
        assert_eq!(r.problems[0].to_string(), "events 4..5 missing");
    }

    #[test]
    fn renumbering_after_deletion_detected() {
        let mut ev = build(&["run_started", "a", "b", "c"], &[]);
        let head = head_of(&ev, false);
        ev.remove(1);
        for e in ev.iter_mut().skip(1) {
            e.seq -= 1;
        }
        let r = verify_chain(RUN, Some(&head), &ev, intact);
        assert!(r.problems.contains(&Problem::HashMismatch { seq: 2 }));
        assert!(r.problems.contains(&Problem::BrokenLink { seq: 2 }));
        assert!(r.problems.contains(&Problem::HeadMismatch {
            chain_seq: 3,
            recorded_seq: 4
        }));
    }

    #[test]
    fn reorder_detected_even_if_rehashed() {
        let mut ev = build(&["run_started", "a", "b", "c"], &[]);
        let head = head_of(&ev, false);
        ev.swap(1, 2);
        ev[1].seq = 2;
        ev[2].seq = 3;
        rehash(&mut ev[1]);
        rehash(&mut ev[2]);
        let r = verify_chain(RUN, Some(&head), &ev, intact);
        assert!(r.problems.contains(&Problem::BrokenLink { seq: 2 }));
        assert!(!r.ok());
    }

    #[test]
    fn truncation_and_seal_checks() {
        let mut ev = build(&["run_started", "a", "b", "sealed"], &[]);
        let head = head_of(&ev, true);
        ev.pop();
        let r = verify_chain(RUN, Some(&head), &ev, intact);
        assert!(r.problems.contains(&Problem::HeadMismatch {
            chain_seq: 3,
            recorded_seq: 4
        }));
        assert!(r.problems.contains(&Problem::SealMissing { last_seq: 3 }));
        assert_eq!(
            r.problems[0].to_string(),
            "chain head is 3 but run records head 4 (events truncated)"
        );

        // Hiding the truncation by moving the head still leaves the seal missing.
        let r = verify_chain(RUN, Some(&head_of(&ev, true)), &ev, intact);
        assert_eq!(r.problems, vec![Problem::SealMissing { last_seq: 3 }]);
    }

    #[test]
    fn tail_replacement_and_seal_flag_checks() {
        let ev = build(&["run_started", "a", "sealed"], &[]);
        let mut head = head_of(&ev, true);
        head.head_hash = "0".repeat(64);
        let r = verify_chain(RUN, Some(&head), &ev, intact);
        assert_eq!(r.problems, vec![Problem::HeadHashMismatch { seq: 3 }]);

        let r = verify_chain(RUN, Some(&head_of(&ev, false)), &ev, intact);
        assert_eq!(r.problems, vec![Problem::SealNotRecorded { seq: 3 }]);

        let ev = build(&["run_started", "sealed", "a"], &[]);
        let r = verify_chain(RUN, Some(&head_of(&ev, true)), &ev, intact);
        assert!(r.problems.contains(&Problem::EventsAfterSeal {
            sealed_seq: 2,
            last_seq: 3
        }));
        assert!(r.problems.contains(&Problem::SealMissing { last_seq: 3 }));
    }

    #[test]
    fn first_event_and_empty_run() {
        let ev = build(&["other", "a"], &[]);
        let r = verify_chain(RUN, Some(&head_of(&ev, false)), &ev, intact);
        assert_eq!(r.problems, vec![Problem::FirstEventKind]);

        let head = RunHead {
            head_seq: 2,
            head_hash: "x".into(),
            sealed: false,
        };
        let r = verify_chain(RUN, Some(&head), &[], intact);
        assert!(r.problems.contains(&Problem::Missing { first: 1, last: 2 }));
        assert_eq!(r.events, 0);
        assert_eq!(r.head_hash, "");
    }

    #[test]
    fn an_intact_run_without_its_seal_is_unsealed_not_ok_and_not_broken() {
        let ev = build(&["run_started", "a", "b"], &[]);
        let r = verify_chain(RUN, Some(&head_of(&ev, false)), &ev, intact);
        assert!(r.ok());
        assert_eq!(r.state(), ChainState::Unsealed);
        assert_eq!(r.head_seq, 3);

        let sealed = build(&["run_started", "a", "sealed"], &[]);
        let r = verify_chain(RUN, Some(&head_of(&sealed, true)), &sealed, intact);
        assert_eq!(r.state(), ChainState::Sealed);

        let mut cut = build(&["run_started", "a", "sealed"], &[]);
        cut.pop();
        let r = verify_chain(RUN, Some(&head_of(&cut, true)), &cut, intact);
        assert_eq!(r.state(), ChainState::Broken, "a seal that went missing");
        let r = verify_chain(RUN, Some(&head_of(&ev, false)), &[], intact);
        assert_eq!(r.state(), ChainState::Broken, "no events at all");
    }

    #[test]
    fn the_head_is_compared_whole_ignoring_case_and_whitespace() {
        let ev = build(&["run_started", "a", "sealed"], &[]);
        let r = verify_chain(RUN, Some(&head_of(&ev, true)), &ev, intact);
        let head = ev[2].hash.clone();
        assert!(r.head_is(&head));
        assert!(r.head_is(&format!(" {}\n", head.to_uppercase())));
        assert!(!r.head_is(&head[..12]), "a prefix is not the head");
        assert!(!r.head_is(&ev[1].hash), "an earlier event is not the head");
        assert!(!r.head_is(""));
        let empty = verify_chain(RUN, Some(&head_of(&ev, false)), &[], intact);
        assert!(!empty.head_is(""));
    }

    #[test]
    fn missing_run_record_is_reported() {
        let ev = build(&["run_started", "a", "sealed"], &[]);
        let r = verify_chain(RUN, None, &ev, intact);
        assert_eq!(r.problems, vec![Problem::RunRecordMissing]);
        assert!(!r.sealed);
    }

    #[test]
    fn chain_is_bound_to_its_run() {
        let ev = build(&["run_started", "a"], &[]);
        let r = verify_chain("other-run", Some(&head_of(&ev, false)), &ev, intact);
        assert!(r.problems.contains(&Problem::HashMismatch { seq: 1 }));
        assert!(r.problems.contains(&Problem::BrokenLink { seq: 1 }));
    }

    #[test]
    fn duplicates_and_bad_payloads() {
        let mut ev = build(&["run_started", "a", "b"], &[]);
        let head = head_of(&ev, false);
        ev.push(ev[1].clone());
        let r = verify_chain(RUN, Some(&head), &ev, intact);
        assert_eq!(r.problems, vec![Problem::OutOfSequence { seq: 2 }]);

        let mut ev = build(&["run_started", "a"], &[]);
        ev[1].payload = "{not json".into();
        ev[1].blobs = "[\"zz\"]".into();
        rehash(&mut ev[1]);
        let r = verify_chain(RUN, Some(&head_of(&ev, false)), &ev, intact);
        assert_eq!(
            r.problems,
            vec![
                Problem::PayloadMalformed { seq: 2 },
                Problem::BlobListMalformed { seq: 2 }
            ]
        );
    }

    #[test]
    fn blob_problems_reported_once_with_first_use() {
        let a = BlobRef::of(b"a");
        let b = BlobRef::of(b"b");
        let c = BlobRef::of(b"c");
        let ev = build(
            &["run_started", "x", "y"],
            &[
                vec![],
                vec![a.clone(), b.clone()],
                vec![a.clone(), c.clone()],
            ],
        );
        let r = verify_chain(RUN, Some(&head_of(&ev, false)), &ev, |blob| {
            if *blob == a {
                BlobCheck::Missing
            } else if *blob == b {
                BlobCheck::Altered
            } else {
                BlobCheck::Unreadable("permission denied".into())
            }
        });
        assert_eq!(
            r.problems,
            vec![
                Problem::BlobMissing {
                    seq: 2,
                    blob: a.clone()
                },
                Problem::BlobAltered { seq: 2, blob: b },
                Problem::BlobUnreadable {
                    seq: 3,
                    blob: c,
                    reason: "permission denied".into()
                },
            ]
        );
        assert_eq!(
            r.problems[0].to_string(),
            format!("event 2: blob {}… missing", &a.as_str()[..12])
        );
    }

    #[test]
    fn problems_serialise_with_a_tag() {
        let p = Problem::Missing { first: 4, last: 5 };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["problem"], "missing");
        assert_eq!(p.seq(), Some(4));
        assert_eq!(
            Problem::Missing { first: 4, last: 4 }.to_string(),
            "event 4 missing"
        );
    }
}
