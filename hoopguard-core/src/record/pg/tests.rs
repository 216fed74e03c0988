//! Against a real PostgreSQL (`HOOPGUARD_TEST_DATABASE_URL`, else 127.0.0.1:5432; `bash
//! scripts/test.sh` finds or starts one). Never skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::json;

use super::*;
use crate::record::Recorder;
use crate::shared::test_database_url;

/// `n` stores on one fresh schema: replicas of one gateway.
fn replicas(n: usize) -> (Vec<Arc<PgStore>>, String) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let schema = format!(
        "hg_test_{now}_{}_rec{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let url = test_database_url();
    let stores = (0..n)
        .map(|_| {
            Arc::new(PgStore::connect(&url, Some(&schema)).unwrap_or_else(|e| {
                panic!("these tests need PostgreSQL: {e}. Set HOOPGUARD_TEST_DATABASE_URL, or run `bash scripts/test.sh`")
            }))
        })
        .collect();
    (stores, schema)
}

/// Runs `sql` on the test schema (what someone with write access to the database could do).
fn tamper(schema: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = Database::connect(&test_database_url(), Some(schema))
            .await
            .unwrap();
        db.client().await.unwrap().batch_execute(sql).await.unwrap();
    });
}

#[test]
fn two_replicas_appending_to_one_session_at_once_make_one_chain() {
    let (stores, _) = replicas(2);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = stores[t % 2].clone();
            std::thread::spawn(move || {
                (0..40)
                    .map(|i| {
                        store
                            .append("shared-1", "call", json!({"t": t, "i": i}))
                            .unwrap()
                            .seq
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    seqs.sort_unstable();
    // Every acknowledged event has its own place in the one chain.
    assert_eq!(seqs, (1..=320).collect::<Vec<_>>());
    for store in &stores {
        assert_eq!(store.verify("shared-1").unwrap(), 320);
        assert_eq!(store.sessions().unwrap(), vec!["shared-1".to_string()]);
    }
    let events = stores[1].read("shared-1").unwrap();
    assert_eq!(events.len(), 320);
    assert!(events.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    let summary = stores[0].summary("shared-1").unwrap().unwrap();
    assert_eq!(summary.events, 320);
    assert_eq!(summary.first_seq, 1);
}

#[test]
fn an_altered_removed_or_added_row_is_found() {
    let (stores, schema) = replicas(1);
    let rec = Recorder::new(stores[0].clone());
    for i in 0..5 {
        rec.append("s-1", "call", json!({"action": "s3:GetObject", "i": i}))
            .unwrap();
    }
    // The legitimate twin: untouched, it verifies.
    assert_eq!(rec.verify("s-1").unwrap(), 5);

    tamper(
        &schema,
        "UPDATE record_events SET line = replace(line, 'GetObject', 'PutObject') WHERE seq = 3",
    );
    let e = rec.verify("s-1").unwrap_err().to_string();
    assert!(e.contains("event 4 does not follow"), "{e}");
    tamper(
        &schema,
        "UPDATE record_events SET line = replace(line, 'PutObject', 'GetObject') WHERE seq = 3",
    );
    assert_eq!(rec.verify("s-1").unwrap(), 5);

    tamper(&schema, "DELETE FROM record_events WHERE seq = 5");
    let e = rec.verify("s-1").unwrap_err().to_string();
    assert!(e.contains("event 5 is missing"), "{e}");

    // Re-chained by hand and the head moved along: the chain verifies alone (what the
    // signed digests are for), but a head moved back past real events is still caught.
    tamper(&schema, "UPDATE record_sessions SET seq = 3");
    let e = rec.verify("s-1").unwrap_err().to_string();
    assert!(e.contains("event 4 was added after"), "{e}");
}

#[test]
fn appends_are_numbered_from_the_database_not_from_what_a_replica_saw() {
    let (stores, _) = replicas(2);
    let (a, b) = (
        Recorder::new(stores[0].clone()),
        Recorder::new(stores[1].clone()),
    );
    assert_eq!(a.append("s-2", "start", json!({})).unwrap().seq, 1);
    assert_eq!(b.append("s-2", "call", json!({})).unwrap().seq, 2);
    assert_eq!(a.append("s-2", "call", json!({})).unwrap().seq, 3);
    assert!(b.exists("s-2"));
    assert!(!a.exists("never-recorded"));
    assert_eq!(a.verify("s-2").unwrap(), 3);
    assert!(a.end("s-2", "done").unwrap());
    assert!(stores[0].state("s-2").unwrap().ended);
    assert_eq!(b.read("s-2").unwrap().last().unwrap().kind, "end");
}

#[test]
fn ended_sessions_past_their_age_are_removed_and_the_rest_kept() {
    let (stores, _) = replicas(1);
    let rec = Recorder::new(stores[0].clone());
    rec.append("old", "call", json!({})).unwrap();
    rec.end("old", "done").unwrap();
    rec.append("open", "call", json!({})).unwrap();
    let later = SystemTime::now() + Duration::from_secs(3600);
    let removed = stores[0]
        .retain(
            &Retention {
                max_age: Some(Duration::from_secs(60)),
                max_size: None,
            },
            later,
        )
        .unwrap();
    assert_eq!(removed.sessions, vec!["old".to_string()]);
    assert_eq!(removed.segments, 2);
    assert_eq!(stores[0].sessions().unwrap(), vec!["open".to_string()]);
    assert!(matches!(
        stores[0].verify("old"),
        Err(RecordError::NotFound(_))
    ));
    assert_eq!(stores[0].verify("open").unwrap(), 1);
}

#[test]
fn an_unreachable_database_is_a_clear_error_at_start() {
    let e = PgStore::connect("postgres://postgres@127.0.0.1:1/postgres", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("PostgreSQL"), "{e}");
}

#[test]
fn a_search_on_any_replica_finds_sessions_by_subject_time_action_and_decision() {
    let (stores, _) = replicas(2);
    let (a, b) = (
        Recorder::new(stores[0].clone()),
        Recorder::new(stores[1].clone()),
    );
    a.append(
        "alice-1",
        "start",
        json!({"subject": "alice@example.com", "groups": ["dev"], "connection": "default"}),
    )
    .unwrap();
    b.append(
        "alice-1",
        "call",
        json!({"action": "ec2:TerminateInstances in us-east-1", "decision": "approve"}),
    )
    .unwrap();
    a.append(
        "alice-1",
        "call",
        json!({"action": "ec2:DescribeInstances in us-east-1", "decision": "allow"}),
    )
    .unwrap();
    b.append("bob-1", "start", json!({"subject": "bob@example.com"}))
        .unwrap();
    b.append(
        "bob-1",
        "call",
        json!({"action": "tool `drop_table`", "decision": "deny"}),
    )
    .unwrap();
    b.end("bob-1", "token expired").unwrap();
    let now = SystemTime::now();
    let find = |q: Query| -> Vec<String> {
        stores[0]
            .search(&q, now)
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect()
    };
    assert_eq!(find(Query::default()), ["alice-1", "bob-1"]);
    let all = stores[1].search(&Query::default(), now).unwrap();
    assert_eq!(all[0].subject.as_deref(), Some("alice@example.com"));
    assert_eq!(all[0].groups, ["dev"]);
    assert_eq!(all[0].origin.as_deref(), Some("default"));
    assert_eq!((all[0].events, all[0].calls, all[0].refused), (3, 2, 1));
    assert_eq!(all[0].ended, None);
    assert_eq!(all[1].ended.as_deref(), Some("token expired"));
    let q = |subject: Option<&str>, action: Option<&str>, decision: Option<&str>| Query {
        subject: subject.map(str::to_string),
        action: action.map(str::to_string),
        decision: decision.map(str::to_string),
        ..Query::default()
    };
    assert_eq!(find(q(Some("ALICE*"), None, None)), ["alice-1"]);
    assert_eq!(find(q(None, Some("ec2:Terminate*"), None)), ["alice-1"]);
    assert_eq!(find(q(None, Some("drop_table"), Some("deny"))), ["bob-1"]);
    // The same call must match both.
    assert!(find(q(None, Some("ec2:Describe*"), Some("approve"))).is_empty());
    // `_` and `%` are literal.
    assert!(find(q(None, Some("drop%"), None)).is_empty());
    let old = Query {
        since: Some(Duration::from_secs(1)),
        ..Query::default()
    };
    assert!(
        stores[0]
            .search(&old, now + Duration::from_secs(3600))
            .unwrap()
            .is_empty()
    );
}
