//! Engine tests against the real SQLite queue store in a temporary directory.

use std::time::Instant;

use alonzo_store_sqlite::SqliteQueueStore;

use super::*;

async fn engine() -> (Queues, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteQueueStore::open(&dir.path().join("queues.db")).unwrap();
    let account = Account { region: "us-east-1".into(), account_id: "123456789012".into() };
    (Queues::open(Arc::new(store), account).await.unwrap(), dir)
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn quick(max: usize) -> ReceiveOptions {
    ReceiveOptions { max_messages: max, wait_time_seconds: Some(0), ..ReceiveOptions::default() }
}

#[tokio::test]
async fn names_urls_and_arns() {
    let (q, _dir) = engine().await;
    let info = q.create_queue("orders", &BTreeMap::new(), &BTreeMap::new()).await.unwrap();
    assert_eq!(info.arn, "arn:aws:sqs:us-east-1:123456789012:orders");
    let url = q.queue_url("127.0.0.1:9000", "orders");
    assert_eq!(url, "http://127.0.0.1:9000/123456789012/orders");
    assert_eq!(q.name_from_url(&url).unwrap(), "orders");
    assert_eq!(q.get_queue_by_arn(&info.arn).unwrap().name, "orders");
    assert!(matches!(q.get_queue("nope"), Err(QueueError::QueueDoesNotExist)));
    // Same attributes: the existing queue; different ones: QueueNameExists.
    q.create_queue("orders", &attrs(&[("VisibilityTimeout", "30")]), &BTreeMap::new())
        .await
        .unwrap();
    assert!(matches!(
        q.create_queue("orders", &attrs(&[("VisibilityTimeout", "31")]), &BTreeMap::new()).await,
        Err(QueueError::QueueNameExists(_))
    ));
    assert_eq!(q.list_queues("ord"), vec!["orders".to_owned()]);
    assert!(q.list_queues("x").is_empty());
}

#[tokio::test]
async fn send_receive_delete_and_stale_handles() {
    let (q, _dir) = engine().await;
    q.create_queue("q", &attrs(&[("VisibilityTimeout", "1")]), &BTreeMap::new()).await.unwrap();
    let mut msg = SendMessage::new("hello");
    msg.message_attributes.insert("k".into(), MessageAttributeValue::string("String", "v"));
    let sent = q.send_message("q", msg).await.unwrap();
    assert_eq!(sent.md5_of_body, "5d41402abc4b2a76b9719d911017c592");
    let got = q.receive_messages("q", quick(10)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id, sent.message_id);
    assert_eq!(got[0].approximate_receive_count, 1);
    assert_eq!(got[0].md5_of_message_attributes, sent.md5_of_message_attributes);
    assert!(q.receive_messages("q", quick(10)).await.unwrap().is_empty(), "in flight");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = q.receive_messages("q", quick(10)).await.unwrap();
    assert_eq!(again[0].approximate_receive_count, 2);
    assert_eq!(
        again[0].approximate_first_receive_timestamp_ms,
        got[0].approximate_first_receive_timestamp_ms
    );
    // The first handle is stale: accepted, no effect.
    q.delete_message("q", &got[0].receipt_handle).await.unwrap();
    let counts = q.queue_attributes("q", &["All".into()]).await.unwrap();
    assert_eq!(counts["ApproximateNumberOfMessagesNotVisible"], "1");
    q.delete_message("q", &again[0].receipt_handle).await.unwrap();
    let counts =
        q.queue_attributes("q", &["ApproximateNumberOfMessagesNotVisible".into()]).await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts["ApproximateNumberOfMessagesNotVisible"], "0");
    assert!(matches!(
        q.delete_message("q", "garbage").await,
        Err(QueueError::ReceiptHandleIsInvalid(_))
    ));
}

#[tokio::test]
async fn long_poll_wakes_on_send_and_times_out() {
    let (q, _dir) = engine().await;
    q.create_queue("q", &BTreeMap::new(), &BTreeMap::new()).await.unwrap();
    let poller = {
        let q = q.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let got = q
                .receive_messages(
                    "q",
                    ReceiveOptions { wait_time_seconds: Some(10), ..ReceiveOptions::default() },
                )
                .await
                .unwrap();
            (got, t.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    q.send_message("q", SendMessage::new("wake")).await.unwrap();
    let (got, took) = poller.await.unwrap();
    assert_eq!(got[0].body, "wake");
    assert!(took < Duration::from_secs(2), "long poll took {took:?}");
    let t = Instant::now();
    let none = q
        .receive_messages(
            "q",
            ReceiveOptions { wait_time_seconds: Some(1), ..ReceiveOptions::default() },
        )
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(t.elapsed() >= Duration::from_millis(950));
}

#[tokio::test]
async fn redrive_moves_after_max_receives() {
    let (q, _dir) = engine().await;
    let dlq = q.create_queue("dlq", &BTreeMap::new(), &BTreeMap::new()).await.unwrap();
    let policy = format!(r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":2}}"#, dlq.arn);
    q.create_queue("src", &attrs(&[("RedrivePolicy", &policy)]), &BTreeMap::new()).await.unwrap();
    q.send_message("src", SendMessage::new("poison")).await.unwrap();
    for _ in 0..2 {
        let got = q.receive_messages("src", quick(1)).await.unwrap();
        q.change_message_visibility("src", &got[0].receipt_handle, 0).await.unwrap();
    }
    assert!(q.receive_messages("src", quick(1)).await.unwrap().is_empty());
    let moved = q.receive_messages("dlq", quick(1)).await.unwrap();
    assert_eq!(moved[0].body, "poison");
    assert!(matches!(
        q.change_message_visibility("src", &moved[0].receipt_handle, 0).await,
        Err(QueueError::ReceiptHandleIsInvalid(_))
    ));
    // A redrive policy naming a missing queue is refused.
    let bad =
        r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:none","maxReceiveCount":2}"#;
    assert!(matches!(
        q.set_queue_attributes("src", &attrs(&[("RedrivePolicy", bad)])).await,
        Err(QueueError::InvalidParameterValue(_))
    ));
}

#[tokio::test]
async fn batches_delays_and_limits() {
    let (q, _dir) = engine().await;
    q.create_queue("q", &attrs(&[("MaximumMessageSize", "1024")]), &BTreeMap::new()).await.unwrap();
    let results = q
        .send_message_batch(
            "q",
            vec![
                ("a".into(), SendMessage::new("ok")),
                ("b".into(), SendMessage::new("x".repeat(1025))),
                ("c".into(), SendMessage { delay_seconds: Some(1), ..SendMessage::new("later") }),
            ],
        )
        .await
        .unwrap();
    assert!(results[0].1.is_ok() && results[2].1.is_ok());
    assert!(matches!(results[1].1, Err(QueueError::InvalidParameterValue(_))));
    let now = q.receive_messages("q", quick(10)).await.unwrap();
    assert_eq!(now.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec!["ok"]);
    let attrs =
        q.queue_attributes("q", &["ApproximateNumberOfMessagesDelayed".into()]).await.unwrap();
    assert_eq!(attrs["ApproximateNumberOfMessagesDelayed"], "1");
    let later = q
        .receive_messages(
            "q",
            ReceiveOptions { wait_time_seconds: Some(3), ..ReceiveOptions::default() },
        )
        .await
        .unwrap();
    assert_eq!(later[0].body, "later");
    assert!(matches!(
        q.send_message_batch("q", Vec::new()).await,
        Err(QueueError::EmptyBatchRequest(_))
    ));
    let too_long: Vec<_> =
        (0..2).map(|i| (i.to_string(), SendMessage::new("y".repeat(600)))).collect();
    assert!(matches!(
        q.send_message_batch("q", too_long).await,
        Err(QueueError::BatchRequestTooLong(..))
    ));
}

#[tokio::test]
async fn attribute_filters() {
    assert!(attribute_wanted("a.b", &["a.*".into()]));
    assert!(!attribute_wanted("ab", &["a.*".into()]));
    assert!(attribute_wanted("x", &[".*".into()]));
    assert!(attribute_wanted("x", &["x".into()]));
    assert!(!attribute_wanted("x", &[]));
}
