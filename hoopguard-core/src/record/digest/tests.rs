use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::record::{Durability, Event, JsonlStore, Retention, Store, verify};

fn store(dir: &Path) -> JsonlStore {
    JsonlStore::open(dir, Durability::EveryEvent).unwrap()
}

fn fill(s: &JsonlStore, session: &str, n: usize) {
    for i in 0..n {
        s.append(session, "call", json!({"i": i})).unwrap();
    }
}

/// Rewrites a session the way someone with write access would: `edit` changes the list of
/// events, then every `prev`, `seq` and the head are recomputed so the hash chain verifies.
fn rechain(dir: &Path, session: &str, edit: impl FnOnce(&mut Vec<Event>)) {
    let path = dir.join(format!("{session}.jsonl"));
    let mut events: Vec<Event> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    edit(&mut events);
    let mut prev = GENESIS.to_string();
    let mut out = String::new();
    for (i, e) in events.iter_mut().enumerate() {
        e.seq = i as u64 + 1;
        e.prev = prev.clone();
        let line = serde_json::to_string(e).unwrap();
        prev = line_hash(line.as_bytes());
        out.push_str(&line);
        out.push('\n');
    }
    std::fs::write(&path, out).unwrap();
    let head_path = dir.join(format!("{session}.head"));
    let mut head: Value = serde_json::from_slice(&std::fs::read(&head_path).unwrap()).unwrap();
    head["seq"] = json!(events.len());
    head["hash"] = json!(prev);
    std::fs::write(&head_path, serde_json::to_vec(&head).unwrap()).unwrap();
}

fn problems(dir: &Path, key: &PublicKey) -> Vec<String> {
    verify_digests(dir, key).unwrap().problems
}

#[test]
fn a_clean_recording_verifies_and_new_events_are_noted_not_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    fill(&s, "a", 3);
    fill(&s, "b", 2);
    let (_, key) = SigningKey::generate().unwrap();
    let public = key.public_key();
    let d = Digester::open(dir.path(), key).unwrap();
    assert_eq!(d.digest(&s).unwrap().unwrap().sessions, 2);
    // Nothing changed: no digest.
    assert!(d.digest(&s).unwrap().is_none());
    fill(&s, "a", 2);
    fill(&s, "c", 1);
    let r = verify_digests(dir.path(), &public).unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.notes.len(), 2, "{:?}", r.notes);
    let made = d.digest(&s).unwrap().unwrap();
    assert_eq!((made.seq, made.sessions), (2, 2));
    let r = verify_digests(dir.path(), &public).unwrap();
    assert!(r.problems.is_empty() && r.notes.is_empty(), "{r:?}");
    assert_eq!((r.digests, r.sessions), (2, 3));
}

#[test]
fn a_digester_opened_again_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let (pkcs8, key) = SigningKey::generate().unwrap();
    let public = key.public_key();
    fill(&s, "a", 1);
    Digester::open(dir.path(), key).unwrap().digest(&s).unwrap();
    // A restart: same key, the chain goes on from the newest digest, unchanged sessions are
    // not named again.
    let d = Digester::open(dir.path(), SigningKey::parse(&pkcs8).unwrap()).unwrap();
    assert!(d.digest(&s).unwrap().is_none());
    fill(&s, "a", 1);
    assert_eq!(d.digest(&s).unwrap().unwrap().seq, 2);
    let r = verify_digests(dir.path(), &public).unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
}

#[test]
fn a_dropped_event_re_chained_verifies_alone_but_not_against_the_digest() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    fill(&s, "a", 5);
    let (_, key) = SigningKey::generate().unwrap();
    let public = key.public_key();
    Digester::open(dir.path(), key).unwrap().digest(&s).unwrap();
    drop(s);
    rechain(dir.path(), "a", |ev| {
        ev.remove(2);
    });
    // The plain chain is fooled...
    assert_eq!(verify(dir.path(), "a").unwrap(), 4);
    // ...the signed digest is not.
    let p = problems(dir.path(), &public);
    assert!(
        p.iter().any(|m| m.contains("events removed from the end")),
        "{p:?}"
    );
    // An altered event, re-chained, keeps the count but not the hash.
    rechain(dir.path(), "a", |ev| {
        ev.push(ev[0].clone());
        ev[1].data = json!({"i": "altered"});
    });
    let p = problems(dir.path(), &public);
    assert!(p.iter().any(|m| m.contains("not the one")), "{p:?}");
}

#[test]
fn removed_sessions_cut_fronts_and_inserted_sessions_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    fill(&s, "gone", 2);
    fill(&s, "cut", 4);
    let (_, key) = SigningKey::generate().unwrap();
    let public = key.public_key();
    let d = Digester::open(dir.path(), key).unwrap();
    d.digest(&s).unwrap();
    drop(s);
    std::fs::remove_file(dir.path().join("gone.jsonl")).unwrap();
    std::fs::remove_file(dir.path().join("gone.head")).unwrap();
    // The front of `cut`: its first two events removed, the head told they were trimmed.
    rechain(dir.path(), "cut", |_| {});
    let lines: Vec<String> = std::fs::read_to_string(dir.path().join("cut.jsonl"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let third: Event = serde_json::from_str(&lines[2]).unwrap();
    std::fs::write(
        dir.path().join("cut.jsonl"),
        format!("{}\n{}\n", lines[2], lines[3]),
    )
    .unwrap();
    let head_path = dir.path().join("cut.head");
    let mut head: Value = serde_json::from_slice(&std::fs::read(&head_path).unwrap()).unwrap();
    head["trim"] = json!({"seq": 2, "hash": third.prev});
    std::fs::write(&head_path, serde_json::to_vec(&head).unwrap()).unwrap();
    assert_eq!(
        verify(dir.path(), "cut").unwrap(),
        2,
        "the plain chain is fooled"
    );
    // A session written by hand with old timestamps.
    let fake = Event {
        seq: 1,
        at: 1,
        session: "fake".into(),
        kind: "start".into(),
        prev: GENESIS.into(),
        data: json!({"subject": "nobody"}),
    };
    let line = serde_json::to_string(&fake).unwrap();
    std::fs::write(dir.path().join("fake.jsonl"), format!("{line}\n")).unwrap();
    std::fs::write(
        dir.path().join("fake.head"),
        serde_json::to_vec(&json!({"seq": 1, "hash": line_hash(line.as_bytes())})).unwrap(),
    )
    .unwrap();
    let p = problems(dir.path(), &public);
    assert!(p.iter().any(|m| m.contains("`gone` is missing")), "{p:?}");
    assert!(
        p.iter().any(|m| m.contains("removed from the front")),
        "{p:?}"
    );
    assert!(
        p.iter().any(|m| m.contains("`fake` is named by no digest")),
        "{p:?}"
    );
}

#[test]
fn digests_cannot_be_altered_removed_or_forged() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let (_, key) = SigningKey::generate().unwrap();
    let public = key.public_key();
    let d = Digester::open(dir.path(), key).unwrap();
    for i in 0..3 {
        fill(&s, &format!("s{i}"), 1);
        d.digest(&s).unwrap();
    }
    assert!(problems(dir.path(), &public).is_empty());
    let digest = |n: u64| dir.path().join(format!("digests/{n:010}.digest"));
    // Removing one from the middle breaks the chain of digests.
    let second = std::fs::read(digest(2)).unwrap();
    std::fs::remove_file(digest(2)).unwrap();
    let p = problems(dir.path(), &public);
    assert!(p.iter().any(|m| m.contains("digest 2: missing")), "{p:?}");
    std::fs::write(digest(2), &second).unwrap();
    // Editing a statement breaks its signature.
    let text = String::from_utf8(second.clone()).unwrap();
    std::fs::write(digest(2), text.replacen("\"events\":1", "\"events\":7", 1)).unwrap();
    let p = problems(dir.path(), &public);
    assert!(p.iter().any(|m| m.contains("does not verify")), "{p:?}");
    // A digest signed with another key does not pass for this one.
    let (_, mallory) = SigningKey::generate().unwrap();
    std::fs::remove_dir_all(digests_dir(dir.path())).unwrap();
    Digester::open(dir.path(), mallory)
        .unwrap()
        .digest(&s)
        .unwrap();
    let p = problems(dir.path(), &public);
    assert!(p.iter().any(|m| m.contains("does not verify")), "{p:?}");
}

#[test]
fn retention_is_recorded_by_the_next_digest_and_then_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).with_segment_size(400);
    fill(&s, "long", 20);
    s.append("long", "end", json!({"reason": "done"})).unwrap();
    fill(&s, "short", 1);
    s.append("short", "end", json!({"reason": "done"})).unwrap();
    let (_, key) = SigningKey::generate().unwrap();
    let public = key.public_key();
    let d = Digester::open(dir.path(), key).unwrap();
    d.digest(&s).unwrap();
    let removed = s
        .retain(
            &Retention {
                max_age: None,
                max_size: Some(1500),
            },
            std::time::SystemTime::now(),
        )
        .unwrap();
    assert!(removed.segments > 0, "{removed:?}");
    // Before the next digest, the trim looks like a cut front; after it, it is on record.
    assert!(!problems(dir.path(), &public).is_empty());
    let made = d.digest(&s).unwrap().unwrap();
    assert!(made.sessions + made.removed > 0);
    let r = verify_digests(dir.path(), &public).unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
}

#[test]
fn keys_round_trip_through_their_file_formats() {
    let (pkcs8, key) = SigningKey::generate().unwrap();
    let again = SigningKey::parse(&pkcs8).unwrap();
    assert_eq!(again.public_key(), key.public_key());
    let b64 = base64::engine::general_purpose::STANDARD.encode(&pkcs8);
    assert_eq!(
        SigningKey::parse(b64.as_bytes()).unwrap().public_key(),
        key.public_key()
    );
    let public = key.public_key();
    assert_eq!(
        PublicKey::parse(format!("{}\n", public.to_base64()).as_bytes()).unwrap(),
        public
    );
    assert!(SigningKey::parse(b"not a key").is_err());
    assert!(PublicKey::parse(b"c2hvcnQ=").is_err());
}
