//! Behaviour of the SQLite store through the `MetaStore` interface.

use std::collections::BTreeMap;

use alonzo_model::{
    CodeRef, FunctionConfig, FunctionRecord, FunctionState, LastUpdateStatus, LATEST,
};
use alonzo_store::{MetaStore, StoreError};

use crate::SqliteStore;

fn record(name: &str, revision: &str) -> FunctionRecord {
    FunctionRecord {
        name: name.into(),
        version: LATEST.into(),
        config: FunctionConfig::new(
            name,
            "python3.11".into(),
            "app.handler".into(),
            "arn:aws:iam::123456789012:role/r".into(),
        ),
        code: CodeRef { sha256_hex: "ab".repeat(32), size: 10, unzipped_size: 20 },
        last_modified: chrono::Utc::now(),
        revision_id: revision.into(),
        state: FunctionState::Pending,
        state_reason: None,
        state_reason_code: None,
        last_update_status: LastUpdateStatus::Successful,
        last_update_status_reason: None,
    }
}

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("meta.db")).unwrap();
    (dir, store)
}

#[tokio::test]
async fn create_get_update_delete() {
    let (_dir, store) = open();
    let tags: BTreeMap<String, String> = [("a".to_owned(), "b".to_owned())].into();
    store.create_function(&record("f", "r1"), &tags).await.unwrap();
    assert!(matches!(
        store.create_function(&record("f", "r9"), &tags).await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(store.get_version("f", LATEST).await.unwrap().revision_id, "r1");
    assert_eq!(store.get_tags("f").await.unwrap(), tags);

    let mut next = record("f", "r2");
    next.config.memory_size = 256;
    assert!(matches!(
        store.update_version(&next, "stale").await,
        Err(StoreError::RevisionMismatch)
    ));
    store.update_version(&next, "r1").await.unwrap();
    assert_eq!(store.get_version("f", LATEST).await.unwrap().config.memory_size, 256);

    store.delete_function("f").await.unwrap();
    assert!(matches!(store.get_version("f", LATEST).await, Err(StoreError::NotFound)));
    assert!(matches!(store.get_tags("f").await, Err(StoreError::NotFound)));
    assert!(matches!(store.delete_function("f").await, Err(StoreError::NotFound)));
}

#[tokio::test]
async fn listing_pages_and_usage() {
    let (_dir, store) = open();
    for name in ["c", "a", "b"] {
        store.create_function(&record(name, "r"), &BTreeMap::new()).await.unwrap();
    }
    let first: Vec<String> =
        store.list_functions(None, 2).await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(first, ["a", "b"]);
    let rest: Vec<String> =
        store.list_functions(Some("b"), 2).await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(rest, ["c"]);
    let usage = store.account_usage().await.unwrap();
    assert_eq!((usage.function_count, usage.total_code_size), (3, 30));
    assert_eq!(store.list_unsettled().await.unwrap().len(), 3);
    assert_eq!(store.referenced_code().await.unwrap(), vec!["ab".repeat(32)]);
}

#[tokio::test]
async fn survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    SqliteStore::open(&path)
        .unwrap()
        .create_function(&record("kept", "r"), &BTreeMap::new())
        .await
        .unwrap();
    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(reopened.get_version("kept", LATEST).await.unwrap().name, "kept");
}

#[tokio::test]
async fn async_events_lease_retry_complete() {
    let (_dir, store) = open();
    let event = |id: &str| alonzo_model::AsyncEvent {
        id: id.into(),
        function: "f".into(),
        qualifier: LATEST.into(),
        payload: b"{}".to_vec(),
        received_ms: 1,
        attempts: 0,
        trace_id: None,
        system_attempts: 0,
        last_failure: None,
        outcome: None,
    };
    store.enqueue_event(&event("a"), 10).await.unwrap();
    store.enqueue_event(&event("b"), 50).await.unwrap();
    store.enqueue_event(&event("a"), 10).await.unwrap();
    let leased = store.lease_events(20, 1000, 10).await.unwrap();
    assert_eq!(leased.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["a"]);
    assert!(
        store.lease_events(20, 1000, 10).await.unwrap().is_empty(),
        "leased events are not handed out twice"
    );
    let mut retried = event("a");
    retried.attempts = 1;
    store.retry_event(&retried, 30).await.unwrap();
    let again = store.lease_events(60, 2000, 10).await.unwrap();
    assert_eq!(again.len(), 2);
    assert_eq!(again.iter().find(|e| e.id == "a").unwrap().attempts, 1);
    assert_eq!(store.release_leases().await.unwrap(), 2);
    store.complete_event("a").await.unwrap();
    store.complete_event("b").await.unwrap();
    assert!(store.lease_events(i64::MAX, i64::MAX, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn metering_records_round_trip() {
    let (_dir, store) = open();
    let rec = alonzo_model::InvocationRecord {
        request_id: "r".into(),
        function: "f".into(),
        version: LATEST.into(),
        started_ms: 5,
        duration_ms: 1.5,
        billed_ms: 2,
        memory_mb: 128,
        init_ms: Some(30.0),
        error_type: None,
        ephemeral_mb: 1024,
        provisioned: true,
    };
    store.record_invocations(std::slice::from_ref(&rec)).await.unwrap();
    assert_eq!(store.invocations(Some("f")).await.unwrap(), vec![rec.clone()]);
    assert_eq!(store.invocations(None).await.unwrap().len(), 1);
    assert!(store.invocations(Some("g")).await.unwrap().is_empty());

    // A record stored before `ephemeral_mb` and `provisioned` existed reads with 512 MB and
    // on-demand.
    store
        .with_conn(|conn| {
            conn.execute(
                "INSERT INTO invocations (request_id, function, started_ms, record) VALUES ('old', 'o', 1, ?1)",
                [r#"{"request_id":"old","function":"o","version":"$LATEST","started_ms":1,"duration_ms":1.0,"billed_ms":1,"memory_mb":128,"init_ms":null,"error_type":null}"#],
            )
            .map_err(crate::backend)
        })
        .await
        .unwrap();
    let old = store.invocations(Some("o")).await.unwrap();
    assert_eq!((old[0].ephemeral_mb, old[0].provisioned), (512, false));
}

#[tokio::test]
async fn provisioned_periods_open_close_and_outlive_the_function() {
    let (_dir, store) = open();
    let period = |qualifier: &str, version: &str, count: u32| alonzo_model::ProvisionedInterval {
        function: "f".into(),
        qualifier: qualifier.into(),
        version: version.into(),
        count,
        memory_mb: 256,
        ephemeral_mb: 1024,
        architecture: alonzo_model::Architecture::Arm64,
        start_ms: 0,
        end_ms: None,
    };
    store.set_provisioned_intervals("f", &[period("1", "1", 2)], 1_000).await.unwrap();
    // The same configuration again keeps the period open from its first start.
    store.set_provisioned_intervals("f", &[period("1", "1", 2)], 2_000).await.unwrap();
    let open = store.provisioned_intervals(Some("f")).await.unwrap();
    assert_eq!(
        open,
        vec![alonzo_model::ProvisionedInterval { start_ms: 1_000, ..period("1", "1", 2) }]
    );
    // A new count ends the period and starts another; an alias is added beside it.
    store
        .set_provisioned_intervals("f", &[period("1", "1", 3), period("live", "2", 1)], 3_000)
        .await
        .unwrap();
    // Nothing configured any more (the function was deleted): every period ends.
    store.set_provisioned_intervals("f", &[], 4_000).await.unwrap();
    let all = store.provisioned_intervals(None).await.unwrap();
    let times: Vec<_> =
        all.iter().map(|p| (p.qualifier.as_str(), p.count, p.start_ms, p.end_ms)).collect();
    assert_eq!(
        times,
        vec![
            ("1", 2, 1_000, Some(3_000)),
            ("1", 3, 3_000, Some(4_000)),
            ("live", 1, 3_000, Some(4_000))
        ]
    );
    assert_eq!(all[0].architecture, alonzo_model::Architecture::Arm64);
    assert!(store.provisioned_intervals(Some("g")).await.unwrap().is_empty());
}

#[tokio::test]
async fn versions_are_numbered_once_and_aliases_follow_functions() {
    let (_dir, store) = open();
    store.create_function(&record("f", "r1"), &BTreeMap::new()).await.unwrap();
    assert!(matches!(
        store.publish_version(&record("f", "v"), "stale").await,
        Err(StoreError::RevisionMismatch)
    ));
    assert_eq!(store.publish_version(&record("f", "v1"), "r1").await.unwrap(), 1);
    assert_eq!(store.publish_version(&record("f", "v2"), "r1").await.unwrap(), 2);
    store.delete_version("f", "2").await.unwrap();
    assert_eq!(
        store.publish_version(&record("f", "v3"), "r1").await.unwrap(),
        3,
        "numbers are never reused"
    );
    let versions: Vec<String> =
        store.list_versions("f").await.unwrap().into_iter().map(|r| r.version).collect();
    assert_eq!(versions, ["$LATEST", "1", "3"]);

    let alias = alonzo_model::AliasRecord {
        function: "f".into(),
        name: "live".into(),
        function_version: "1".into(),
        description: String::new(),
        routing: BTreeMap::new(),
        revision_id: "a1".into(),
    };
    store.create_alias(&alias).await.unwrap();
    assert!(matches!(store.create_alias(&alias).await, Err(StoreError::AlreadyExists)));
    let moved = alonzo_model::AliasRecord {
        function_version: "3".into(),
        revision_id: "a2".into(),
        ..alias.clone()
    };
    assert!(matches!(store.update_alias(&moved, "stale").await, Err(StoreError::RevisionMismatch)));
    store.update_alias(&moved, "a1").await.unwrap();
    assert_eq!(store.get_alias("f", "live").await.unwrap().function_version, "3");
    assert_eq!(store.list_aliases("f").await.unwrap().len(), 1);
    store.delete_function("f").await.unwrap();
    assert!(matches!(store.get_alias("f", "live").await, Err(StoreError::NotFound)));
    let orphan = alonzo_model::AliasRecord { function: "gone".into(), ..alias };
    assert!(matches!(store.create_alias(&orphan).await, Err(StoreError::NotFound)));
}

#[tokio::test]
async fn layer_versions_are_numbered_once_and_their_code_stays_referenced() {
    let (_dir, store) = open();
    let layer = |sha: &str| alonzo_model::LayerVersionRecord {
        name: "deps".into(),
        version: 0,
        description: String::new(),
        compatible_runtimes: vec!["python3.11".into()],
        compatible_architectures: Vec::new(),
        license_info: None,
        code: CodeRef { sha256_hex: sha.repeat(64), size: 1, unzipped_size: 1 },
        created: chrono::Utc::now(),
    };
    assert_eq!(store.publish_layer_version(&layer("1")).await.unwrap(), 1);
    assert_eq!(store.publish_layer_version(&layer("2")).await.unwrap(), 2);
    store.delete_layer_version("deps", 2).await.unwrap();
    assert_eq!(store.publish_layer_version(&layer("3")).await.unwrap(), 3);
    let versions: Vec<u64> =
        store.list_layer_versions("deps").await.unwrap().into_iter().map(|l| l.version).collect();
    assert_eq!(versions, [3, 1]);
    assert_eq!(store.get_layer_version("deps", 1).await.unwrap().code.sha256_hex, "1".repeat(64));

    let mut f = record("f", "r");
    f.config.layer_code = vec![CodeRef { sha256_hex: "9".repeat(64), size: 1, unzipped_size: 1 }];
    store.create_function(&f, &BTreeMap::new()).await.unwrap();
    let mut referenced = store.referenced_code().await.unwrap();
    referenced.sort();
    assert_eq!(referenced, ["1".repeat(64), "3".repeat(64), "9".repeat(64), "ab".repeat(32)]);
}

#[tokio::test]
async fn settings_round_trip_and_follow_their_function() {
    use alonzo_model::{EventInvokeConfig, FunctionSetting, SettingKind};
    let (_dir, store) = open();
    let reserved = FunctionSetting::ReservedConcurrency { reserved: 5 };
    assert!(matches!(store.put_setting("f", "", &reserved).await, Err(StoreError::NotFound)));
    store.create_function(&record("f", "r1"), &BTreeMap::new()).await.unwrap();
    store.put_setting("f", "", &reserved).await.unwrap();
    let invoke = FunctionSetting::EventInvoke(EventInvokeConfig {
        maximum_retry_attempts: Some(0),
        ..Default::default()
    });
    store.put_setting("f", "$LATEST", &invoke).await.unwrap();
    store.put_setting("f", "live", &invoke).await.unwrap();
    assert_eq!(
        store.get_setting("f", SettingKind::ReservedConcurrency, "").await.unwrap(),
        Some(reserved.clone())
    );
    let listed = store.list_settings(Some("f"), SettingKind::EventInvoke).await.unwrap();
    assert_eq!(listed.iter().map(|(_, q, _)| q.as_str()).collect::<Vec<_>>(), ["$LATEST", "live"]);
    assert!(store.delete_setting("f", SettingKind::EventInvoke, "live").await.unwrap());
    assert!(!store.delete_setting("f", SettingKind::EventInvoke, "live").await.unwrap());
    store.delete_function("f").await.unwrap();
    assert!(store.list_settings(None, SettingKind::ReservedConcurrency).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enqueues_share_commits_and_all_land() {
    let (_dir, store) = open();
    let mut tasks = Vec::new();
    for i in 0..400 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let event = alonzo_model::AsyncEvent {
                id: format!("e{i}"),
                function: "f".into(),
                qualifier: String::new(),
                payload: b"{}".to_vec(),
                received_ms: 1,
                attempts: 0,
                trace_id: None,
                system_attempts: 0,
                last_failure: None,
                outcome: None,
            };
            store.enqueue_event(&event, 1).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let leased = store.lease_events(10, 1000, 1000).await.unwrap();
    assert_eq!(leased.len(), 400);
    for e in &leased[..200] {
        store.complete_event(&e.id).await.unwrap();
    }
    store.release_leases().await.unwrap();
    assert_eq!(store.lease_events(10, 1000, 1000).await.unwrap().len(), 200);
}

/// `get_version` answers from its cache, and every write of a version is seen at once: each
/// read below follows a read that cached the previous value.
#[tokio::test]
async fn cached_records_follow_every_write() {
    let (dir, store) = open();
    store.create_function(&record("f", "r1"), &BTreeMap::new()).await.unwrap();
    for _ in 0..2 {
        assert_eq!(store.get_version("f", LATEST).await.unwrap().revision_id, "r1");
    }
    let mut next = record("f", "r2");
    next.config.timeout = 30;
    store.update_version(&next, "r1").await.unwrap();
    assert_eq!(store.get_version("f", LATEST).await.unwrap().config.timeout, 30);

    assert!(matches!(store.get_version("f", "1").await, Err(StoreError::NotFound)));
    assert_eq!(store.publish_version(&record("f", "v1"), "r2").await.unwrap(), 1);
    assert_eq!(store.get_version("f", "1").await.unwrap().revision_id, "v1");
    store.delete_version("f", "1").await.unwrap();
    assert!(matches!(store.get_version("f", "1").await, Err(StoreError::NotFound)));

    store.delete_function("f").await.unwrap();
    assert!(matches!(store.get_version("f", LATEST).await, Err(StoreError::NotFound)));
    // A function created again under the same name is the new one.
    store.create_function(&record("f", "r9"), &BTreeMap::new()).await.unwrap();
    assert_eq!(store.get_version("f", LATEST).await.unwrap().revision_id, "r9");
    // Another handle on the same database (a restart) reads what was written.
    let again = SqliteStore::open(&dir.path().join("meta.db")).unwrap();
    assert_eq!(again.get_version("f", LATEST).await.unwrap().revision_id, "r9");
}
