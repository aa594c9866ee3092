//! [`AccessStore`] on SQLite: resource policies in `function_policies`, function URL
//! configurations in `function_urls`, one row per function and qualifier (`''` for the
//! unqualified function), each a JSON document owned by this crate.

use alonzo_model::{FunctionUrlRecord, ResourcePolicy};
use alonzo_store::{AccessStore, StoreError};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::{backend, change_one, SqliteStore};

fn column(qualifier: Option<&str>) -> String {
    qualifier.unwrap_or("").to_owned()
}

fn function_exists(tx: &rusqlite::Transaction<'_>, function: &str) -> Result<bool, StoreError> {
    let n: i64 = tx
        .query_row("SELECT COUNT(*) FROM functions WHERE name = ?1", params![function], |row| {
            row.get(0)
        })
        .map_err(backend)?;
    Ok(n > 0)
}

#[async_trait::async_trait]
impl AccessStore for SqliteStore {
    async fn get_policy(
        &self,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<Option<ResourcePolicy>, StoreError> {
        let (function, qualifier) = (function.to_owned(), column(qualifier));
        self.with_conn(move |conn| {
            let doc: Option<String> = conn
                .query_row(
                    "SELECT record FROM function_policies WHERE function = ?1 AND qualifier = ?2",
                    params![function, qualifier],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)?;
            doc.map(|d| serde_json::from_str(&d).map_err(backend)).transpose()
        })
        .await
    }

    async fn put_policy(
        &self,
        policy: &ResourcePolicy,
        expected_revision: Option<&str>,
    ) -> Result<(), StoreError> {
        let doc = serde_json::to_string(policy).map_err(backend)?;
        let (function, qualifier) = (policy.function.clone(), column(policy.qualifier.as_deref()));
        let (revision, empty) = (policy.revision_id.clone(), policy.statements.is_empty());
        let expected = expected_revision.map(str::to_owned);
        self.with_conn(move |conn| {
            let tx =
                conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            if !function_exists(&tx, &function)? {
                return Err(StoreError::NotFound);
            }
            let current: Option<String> = tx
                .query_row(
                    "SELECT revision_id FROM function_policies WHERE function = ?1 AND qualifier = ?2",
                    params![function, qualifier],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)?;
            if current != expected {
                return Err(StoreError::RevisionMismatch);
            }
            if empty {
                tx.execute(
                    "DELETE FROM function_policies WHERE function = ?1 AND qualifier = ?2",
                    params![function, qualifier],
                )
                .map_err(backend)?;
            } else {
                tx.execute(
                    "INSERT INTO function_policies (function, qualifier, revision_id, record) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(function, qualifier) DO UPDATE SET revision_id = excluded.revision_id, record = excluded.record",
                    params![function, qualifier, revision, doc],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn create_function_url(&self, url: &FunctionUrlRecord) -> Result<(), StoreError> {
        let doc = serde_json::to_string(url).map_err(backend)?;
        let (function, qualifier) = (url.function.clone(), column(url.qualifier.as_deref()));
        let url_id = url.url_id.clone();
        self.with_conn(move |conn| {
            let tx =
                conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            if !function_exists(&tx, &function)? {
                return Err(StoreError::NotFound);
            }
            let inserted = tx
                .execute(
                    "INSERT INTO function_urls (function, qualifier, url_id, record) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(function, qualifier) DO NOTHING",
                    params![function, qualifier, url_id, doc],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists);
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn get_function_url(
        &self,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<FunctionUrlRecord, StoreError> {
        let (function, qualifier) = (function.to_owned(), column(qualifier));
        self.with_conn(move |conn| {
            let doc: Option<String> = conn
                .query_row(
                    "SELECT record FROM function_urls WHERE function = ?1 AND qualifier = ?2",
                    params![function, qualifier],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)?;
            serde_json::from_str(&doc.ok_or(StoreError::NotFound)?).map_err(backend)
        })
        .await
    }

    async fn function_url_by_id(&self, url_id: &str) -> Result<FunctionUrlRecord, StoreError> {
        let url_id = url_id.to_owned();
        self.with_conn(move |conn| {
            let doc: Option<String> = conn
                .query_row(
                    "SELECT record FROM function_urls WHERE url_id = ?1",
                    params![url_id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)?;
            serde_json::from_str(&doc.ok_or(StoreError::NotFound)?).map_err(backend)
        })
        .await
    }

    async fn update_function_url(&self, url: &FunctionUrlRecord) -> Result<(), StoreError> {
        let doc = serde_json::to_string(url).map_err(backend)?;
        let (function, qualifier) = (url.function.clone(), column(url.qualifier.as_deref()));
        self.with_conn(move |conn| {
            change_one(
                conn,
                "UPDATE function_urls SET record = ?3 WHERE function = ?1 AND qualifier = ?2",
                params![function, qualifier, doc],
            )
        })
        .await
    }

    async fn delete_function_url(
        &self,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<(), StoreError> {
        let (function, qualifier) = (function.to_owned(), column(qualifier));
        self.with_conn(move |conn| {
            change_one(
                conn,
                "DELETE FROM function_urls WHERE function = ?1 AND qualifier = ?2",
                params![function, qualifier],
            )
        })
        .await
    }

    async fn list_function_urls(
        &self,
        function: &str,
    ) -> Result<Vec<FunctionUrlRecord>, StoreError> {
        let function = function.to_owned();
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT record FROM function_urls WHERE function = ?1 ORDER BY qualifier",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![function], |row| row.get::<_, String>(0))
                .map_err(backend)?;
            rows.map(|doc| serde_json::from_str(&doc.map_err(backend)?).map_err(backend)).collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use alonzo_model::{
        AliasRecord, CodeRef, FunctionConfig, FunctionRecord, FunctionState, InvokeMode,
        LastUpdateStatus, PolicyStatement, UrlAuthType, LATEST,
    };
    use alonzo_store::MetaStore;

    use super::*;

    async fn store_with_function(name: &str) -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("meta.db")).unwrap();
        let record = FunctionRecord {
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
            revision_id: "r1".into(),
            state: FunctionState::Active,
            state_reason: None,
            state_reason_code: None,
            last_update_status: LastUpdateStatus::Successful,
            last_update_status_reason: None,
        };
        store.create_function(&record, &Default::default()).await.unwrap();
        (dir, store)
    }

    fn policy(qualifier: Option<&str>, revision: &str, sids: &[&str]) -> ResourcePolicy {
        ResourcePolicy {
            function: "f".into(),
            qualifier: qualifier.map(str::to_owned),
            revision_id: revision.into(),
            statements: sids
                .iter()
                .map(|sid| PolicyStatement {
                    sid: (*sid).into(),
                    action: "lambda:InvokeFunction".into(),
                    principal: "*".into(),
                    resource: "arn".into(),
                    source_arn: None,
                    source_account: None,
                    principal_org_id: None,
                    event_source_token: None,
                    function_url_auth_type: None,
                    invoked_via_function_url: None,
                })
                .collect(),
        }
    }

    fn url(qualifier: Option<&str>, id: &str) -> FunctionUrlRecord {
        FunctionUrlRecord {
            function: "f".into(),
            qualifier: qualifier.map(str::to_owned),
            url_id: id.into(),
            auth_type: UrlAuthType::None,
            cors: None,
            invoke_mode: InvokeMode::Buffered,
            created: chrono::Utc::now(),
            last_modified: chrono::Utc::now(),
        }
    }

    #[tokio::test]
    async fn policies_compare_and_swap_per_qualifier() {
        let (_dir, store) = store_with_function("f").await;
        assert!(store.get_policy("f", None).await.unwrap().is_none());
        store.put_policy(&policy(None, "p1", &["a"]), None).await.unwrap();
        assert!(matches!(
            store.put_policy(&policy(None, "p2", &["a", "b"]), None).await,
            Err(StoreError::RevisionMismatch)
        ));
        store.put_policy(&policy(None, "p2", &["a", "b"]), Some("p1")).await.unwrap();
        store.put_policy(&policy(Some("live"), "q1", &["c"]), None).await.unwrap();
        assert_eq!(store.get_policy("f", None).await.unwrap().unwrap().statements.len(), 2);
        assert_eq!(store.get_policy("f", Some("live")).await.unwrap().unwrap().revision_id, "q1");
        store.put_policy(&policy(None, "p3", &[]), Some("p2")).await.unwrap();
        assert!(store.get_policy("f", None).await.unwrap().is_none(), "empty policy is deleted");
        let mut missing = policy(None, "x", &["a"]);
        missing.function = "nope".into();
        assert!(matches!(store.put_policy(&missing, None).await, Err(StoreError::NotFound)));
    }

    #[tokio::test]
    async fn urls_are_unique_per_qualifier_and_found_by_id() {
        let (_dir, store) = store_with_function("f").await;
        let id1 = "a".repeat(32);
        store.create_function_url(&url(None, &id1)).await.unwrap();
        assert!(matches!(
            store.create_function_url(&url(None, &"b".repeat(32))).await,
            Err(StoreError::AlreadyExists)
        ));
        store.create_function_url(&url(Some("live"), &"c".repeat(32))).await.unwrap();
        assert_eq!(store.function_url_by_id(&id1).await.unwrap().qualifier, None);
        let mut changed = url(None, &id1);
        changed.auth_type = UrlAuthType::AwsIam;
        store.update_function_url(&changed).await.unwrap();
        assert_eq!(store.get_function_url("f", None).await.unwrap().auth_type, UrlAuthType::AwsIam);
        let listed = store.list_function_urls("f").await.unwrap();
        assert_eq!(
            listed.iter().map(|u| u.qualifier.clone()).collect::<Vec<_>>(),
            [None, Some("live".into())]
        );
        store.delete_function_url("f", Some("live")).await.unwrap();
        assert!(matches!(
            store.delete_function_url("f", Some("live")).await,
            Err(StoreError::NotFound)
        ));
    }

    #[tokio::test]
    async fn deleting_an_alias_or_the_function_removes_its_access_records() {
        let (_dir, store) = store_with_function("f").await;
        let alias = AliasRecord {
            function: "f".into(),
            name: "live".into(),
            function_version: LATEST.into(),
            description: String::new(),
            routing: Default::default(),
            revision_id: "a1".into(),
        };
        store.create_alias(&alias).await.unwrap();
        store.create_function_url(&url(Some("live"), &"c".repeat(32))).await.unwrap();
        store.put_policy(&policy(Some("live"), "q1", &["c"]), None).await.unwrap();
        store.create_function_url(&url(None, &"d".repeat(32))).await.unwrap();
        store.put_policy(&policy(None, "p1", &["a"]), None).await.unwrap();
        store.delete_alias("f", "live").await.unwrap();
        assert!(store.get_policy("f", Some("live")).await.unwrap().is_none());
        assert!(matches!(
            store.function_url_by_id(&"c".repeat(32)).await,
            Err(StoreError::NotFound)
        ));
        assert!(store.get_policy("f", None).await.unwrap().is_some());
        store.delete_function("f").await.unwrap();
        assert!(matches!(
            store.function_url_by_id(&"d".repeat(32)).await,
            Err(StoreError::NotFound)
        ));
        assert!(store.get_policy("f", None).await.unwrap().is_none());
    }
}
