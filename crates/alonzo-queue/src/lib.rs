//! The SQS-compatible queue engine: standard queues with SQS's semantics, independent of
//! HTTP and of any wire format, durable through a [`QueueStore`] (`<data>/queues.db` in
//! `alonzo serve`).
//!
//! [`Queues`] is a cheap, cloneable handle; `alonzo-api` calls it for the SQS wire API and
//! the control plane can call it in-process (dead-letter queues, destinations, event source
//! mappings). Queues are named by their name within the server's one account; ARNs are
//! `arn:aws:sqs:{region}:{account}:{name}` and URLs `http://{host}/{account}/{name}`
//! ([`Queues::queue_url`], [`Queues::name_from_url`], [`Queues::get_queue_by_arn`]).
//!
//! ```text
//! let sent = queues.send_message("dlq", SendMessage::new(body)).await?;            // durable on return
//! let batch = queues.receive_messages("q", ReceiveOptions { max_messages: 10,
//!                                      wait_time_seconds: Some(20), ..Default::default() }).await?;
//! for m in batch { /* m.body, m.message_attributes, m.approximate_receive_count, … */
//!     queues.delete_message("q", &m.receipt_handle).await?; }
//! queues.change_message_visibility("q", &handle, 0).await?;                         // back to visible
//! ```
//!
//! Semantics: a receive hands out visible messages behind a new receipt handle and hides
//! them for the visibility timeout; only the newest handle of a message deletes it (an older
//! one succeeds without effect, as on SQS); a message already received `maxReceiveCount`
//! times is moved to the dead-letter queue by the receive that would exceed it; messages
//! past `MessageRetentionPeriod` are dropped; long polls wait on a per-queue notification
//! woken by sends (and re-check once a second for delayed and expiring messages), never
//! busy-polling the store. `MD5OfBody`/`MD5OfMessageAttributes` follow SQS's algorithms
//! ([`md5_of_body`], [`md5_of_attributes`]). FIFO queues are not implemented.
//!
//! **Invariant:** no HTTP, no JSON wire shapes, no SQL; the store is reached only through
//! [`QueueStore`].

mod config;
mod digest;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod message;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alonzo_model::Account;
use alonzo_store::queue::{NewMessage, QueueRecord, ReceiveRequest, RedriveRule, VisibilityChange};
use tokio::sync::Notify;

pub use alonzo_store::queue::{MessageAttributeValue, QueueStore};
pub use config::{parse_redrive, QueueConfig, RedrivePolicy, DEFAULT_MAX_MESSAGE_SIZE};
pub use digest::{md5_of_attributes, md5_of_body};
pub use error::QueueError;

/// Checks a batch's shape as SQS does before looking at any entry: 1 to 10 entries with
/// distinct ids of letters, digits, `-` and `_` (at most 80). `entry_kind` names the entry
/// type in the `EmptyBatchRequest` message.
pub fn check_batch_ids<'a>(
    ids: impl ExactSizeIterator<Item = &'a str>,
    entry_kind: &'static str,
) -> Result<(), QueueError> {
    message::validate_batch(ids, entry_kind)
}

/// Longest long poll, seconds.
pub const MAX_WAIT_SECONDS: u32 = 20;
/// How often a long poll re-checks the store without a wake-up (delays and visibility
/// timeouts expire without a send).
const RECHECK: Duration = Duration::from_secs(1);

/// The names of the system attributes a received message carries.
pub const SYSTEM_ATTRIBUTES: &[&str] =
    &["SenderId", "SentTimestamp", "ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp"];

/// A message to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendMessage {
    /// The body (1 character at least; SQS's allowed characters).
    pub body: String,
    /// Seconds before it can be received (0–900); `None` takes the queue's `DelaySeconds`.
    pub delay_seconds: Option<u32>,
    /// Message attributes by name (at most 10).
    pub message_attributes: BTreeMap<String, MessageAttributeValue>,
    /// `SenderId` to record; `None` records the account id.
    pub sender_id: Option<String>,
    /// The `AWSTraceHeader` system attribute (an X-Ray trace header).
    pub trace_header: Option<String>,
}

impl SendMessage {
    /// A message with only a body.
    pub fn new(body: impl Into<String>) -> Self {
        Self { body: body.into(), ..Self::default() }
    }
}

/// What a successful send returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The new message's id.
    pub message_id: String,
    /// Hex MD5 of the body.
    pub md5_of_body: String,
    /// Hex MD5 of the message attributes, if any.
    pub md5_of_message_attributes: Option<String>,
}

/// How to receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveOptions {
    /// Most messages to return (1–10).
    pub max_messages: usize,
    /// Seconds the messages stay invisible; `None` takes the queue's `VisibilityTimeout`.
    pub visibility_timeout: Option<u32>,
    /// Seconds to wait for a first message (0–20); `None` takes the queue's
    /// `ReceiveMessageWaitTimeSeconds`.
    pub wait_time_seconds: Option<u32>,
    /// Which message attributes to return: names, `All`, `.*`, or `prefix.*`.
    pub message_attribute_names: Vec<String>,
}

impl Default for ReceiveOptions {
    /// Up to 10 messages with all their attributes, queue defaults otherwise.
    fn default() -> Self {
        Self {
            max_messages: 10,
            visibility_timeout: None,
            wait_time_seconds: None,
            message_attribute_names: vec!["All".into()],
        }
    }
}

/// A received message: everything SQS's `ReceiveMessage` and Lambda's SQS event record show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The message id.
    pub message_id: String,
    /// The handle of this receive; only the newest deletes the message.
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// Hex MD5 of the body.
    pub md5_of_body: String,
    /// Hex MD5 of the returned message attributes, if any are returned.
    pub md5_of_message_attributes: Option<String>,
    /// The message attributes selected by [`ReceiveOptions::message_attribute_names`].
    pub message_attributes: BTreeMap<String, MessageAttributeValue>,
    /// `SenderId`.
    pub sender_id: String,
    /// `AWSTraceHeader`, if the sender set it.
    pub trace_header: Option<String>,
    /// `SentTimestamp`, ms since the epoch.
    pub sent_timestamp_ms: i64,
    /// `ApproximateReceiveCount`, this receive included.
    pub approximate_receive_count: u32,
    /// `ApproximateFirstReceiveTimestamp`, ms since the epoch.
    pub approximate_first_receive_timestamp_ms: i64,
    /// The ARN of the queue it was received from (Lambda's `eventSourceARN`).
    pub queue_arn: String,
}

impl ReceivedMessage {
    /// The system attributes by SQS's names, values as SQS spells them.
    pub fn system_attributes(&self) -> BTreeMap<&'static str, String> {
        let mut out = BTreeMap::from([
            ("SenderId", self.sender_id.clone()),
            ("SentTimestamp", self.sent_timestamp_ms.to_string()),
            ("ApproximateReceiveCount", self.approximate_receive_count.to_string()),
            (
                "ApproximateFirstReceiveTimestamp",
                self.approximate_first_receive_timestamp_ms.to_string(),
            ),
        ]);
        if let Some(trace) = &self.trace_header {
            out.insert("AWSTraceHeader", trace.clone());
        }
        out
    }
}

/// A queue's identity and settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// The name.
    pub name: String,
    /// `arn:aws:sqs:{region}:{account}:{name}`.
    pub arn: String,
    /// The typed settings.
    pub config: QueueConfig,
}

/// One cached queue.
#[derive(Debug)]
struct Entry {
    record: QueueRecord,
    config: QueueConfig,
    /// Woken when messages may have become receivable.
    ready: Arc<Notify>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn QueueStore>,
    account: Account,
    /// Every queue by name. The engine is the store's only writer, so this is the truth.
    queues: RwLock<HashMap<String, Arc<Entry>>>,
    closing: AtomicBool,
    /// Serialises queue creation, attribute changes and deletion (not message traffic).
    admin: tokio::sync::Mutex<()>,
}

/// The queue engine handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct Queues {
    inner: Arc<Inner>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Queues {
    /// Loads the queues of `store`.
    pub async fn open(store: Arc<dyn QueueStore>, account: Account) -> Result<Self, QueueError> {
        let records = store.list_queues().await?;
        let queues = records
            .into_iter()
            .map(|record| (record.name.clone(), Arc::new(entry(record, Arc::new(Notify::new())))))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                account,
                queues: RwLock::new(queues),
                closing: AtomicBool::new(false),
                admin: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Ends every long poll now (with what it has) and makes new ones return at once; for
    /// graceful shutdown.
    pub fn close(&self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        for e in self.read().values() {
            e.ready.notify_waiters();
        }
    }

    /// The account queues belong to.
    pub fn account(&self) -> &Account {
        &self.inner.account
    }

    /// `arn:aws:sqs:{region}:{account}:{name}`.
    pub fn queue_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:sqs:{}:{}:{name}",
            self.inner.account.region, self.inner.account.account_id
        )
    }

    /// `http://{host}/{account}/{name}`, `host` being what the client used to reach us.
    pub fn queue_url(&self, host: &str, name: &str) -> String {
        format!("http://{host}/{}/{name}", self.inner.account.account_id)
    }

    /// The queue name a URL names (any scheme and host; the path must end in
    /// `/{account}/{name}` or be `/{name}`).
    pub fn name_from_url(&self, url: &str) -> Result<String, QueueError> {
        let path = match url.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
            None => url,
        };
        let path = path.split(['?', '#']).next().unwrap_or("");
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let name = match parts.as_slice() {
            [account, name] if *account == self.inner.account.account_id => *name,
            [name] => *name,
            _ => return Err(QueueError::QueueDoesNotExist),
        };
        Ok(name.to_owned())
    }

    /// The queue name an SQS ARN of this account names.
    pub fn name_from_arn(&self, arn: &str) -> Option<String> {
        let prefix =
            format!("arn:aws:sqs:{}:{}:", self.inner.account.region, self.inner.account.account_id);
        arn.strip_prefix(&prefix).filter(|n| !n.is_empty() && !n.contains(':')).map(str::to_owned)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Entry>>> {
        self.inner.queues.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Entry>>> {
        self.inner.queues.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn entry(&self, name: &str) -> Result<Arc<Entry>, QueueError> {
        self.read().get(name).cloned().ok_or(QueueError::QueueDoesNotExist)
    }

    fn info(&self, e: &Entry) -> QueueInfo {
        QueueInfo {
            name: e.record.name.clone(),
            arn: self.queue_arn(&e.record.name),
            config: e.config.clone(),
        }
    }

    fn dead_letter_exists(&self, arn: &str) -> bool {
        self.name_from_arn(arn).is_some_and(|n| self.read().contains_key(&n))
    }

    /// Creates a queue, or returns the existing one if every given attribute has the same
    /// value there (else `QueueNameExists`).
    pub async fn create_queue(
        &self,
        name: &str,
        attributes: &BTreeMap<String, String>,
        tags: &BTreeMap<String, String>,
    ) -> Result<QueueInfo, QueueError> {
        config::validate_name(name)?;
        let attributes = config::validate(attributes, true, |arn| self.dead_letter_exists(arn))?;
        let attributes: BTreeMap<String, String> = attributes
            .into_iter()
            .filter(|(k, v)| !(k == "RedrivePolicy" && v.is_empty()))
            .collect();
        let _admin = self.inner.admin.lock().await;
        if let Some(existing) = self.read().get(name).cloned() {
            let current = config::effective(&existing.record.attributes);
            for (k, v) in &attributes {
                if current.get(k) != Some(v) {
                    return Err(QueueError::QueueNameExists(format!(
                        "A queue already exists with the same name and a different value for attribute {k}"
                    )));
                }
            }
            return Ok(self.info(&existing));
        }
        let (record, _) = self.inner.store.create_queue(name, &attributes, tags, now_ms()).await?;
        let e = Arc::new(entry(record, Arc::new(Notify::new())));
        self.write().insert(name.to_owned(), Arc::clone(&e));
        tracing::info!(queue = name, "queue created");
        Ok(self.info(&e))
    }

    /// The queue of that name.
    pub fn get_queue(&self, name: &str) -> Result<QueueInfo, QueueError> {
        let e = self.entry(name)?;
        Ok(self.info(&e))
    }

    /// The queue an SQS ARN names.
    pub fn get_queue_by_arn(&self, arn: &str) -> Result<QueueInfo, QueueError> {
        self.get_queue(&self.name_from_arn(arn).ok_or(QueueError::QueueDoesNotExist)?)
    }

    /// Names of the queues starting with `prefix`, sorted.
    pub fn list_queues(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> =
            self.read().keys().filter(|n| n.starts_with(prefix)).cloned().collect();
        names.sort();
        names
    }

    /// Queue attributes by SQS's names: `All`, or a list of names (unknown ones are
    /// `InvalidAttributeName`). Counts are computed now.
    pub async fn queue_attributes(
        &self,
        name: &str,
        names: &[String],
    ) -> Result<BTreeMap<String, String>, QueueError> {
        let e = self.entry(name)?;
        let mut all = config::effective(&e.record.attributes);
        let all_wanted = names.iter().any(|n| n == "All");
        let wants = |n: &str| all_wanted || names.iter().any(|w| w == n);
        for n in names {
            if n != "All"
                && !all.contains_key(n)
                && !config::COMPUTED.contains(&n.as_str())
                && !matches!(
                    n.as_str(),
                    "RedrivePolicy"
                        | "RedriveAllowPolicy"
                        | "Policy"
                        | "KmsMasterKeyId"
                        | "KmsDataKeyReusePeriodSeconds"
                )
            {
                return Err(QueueError::InvalidAttributeName(format!("Unknown Attribute {n}.")));
            }
        }
        all.insert("QueueArn".into(), self.queue_arn(name));
        all.insert("CreatedTimestamp".into(), (e.record.created_ms / 1000).to_string());
        all.insert("LastModifiedTimestamp".into(), (e.record.modified_ms / 1000).to_string());
        if [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        .iter()
        .any(|n| wants(n))
        {
            let counts = self
                .inner
                .store
                .counts(e.record.id, now_ms(), i64::from(e.config.retention) * 1000)
                .await?;
            all.insert("ApproximateNumberOfMessages".into(), counts.visible.to_string());
            all.insert(
                "ApproximateNumberOfMessagesNotVisible".into(),
                counts.in_flight.to_string(),
            );
            all.insert("ApproximateNumberOfMessagesDelayed".into(), counts.delayed.to_string());
        }
        all.retain(|k, _| wants(k));
        Ok(all)
    }

    /// Changes queue attributes (an empty `RedrivePolicy` removes it).
    pub async fn set_queue_attributes(
        &self,
        name: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<(), QueueError> {
        let attributes = config::validate(attributes, false, |arn| self.dead_letter_exists(arn))?;
        let _admin = self.inner.admin.lock().await;
        let e = self.entry(name)?;
        let mut merged = e.record.attributes.clone();
        for (k, v) in attributes {
            if v.is_empty() && k == "RedrivePolicy" {
                merged.remove(&k);
            } else {
                merged.insert(k, v);
            }
        }
        self.update(&e, merged, e.record.tags.clone()).await
    }

    async fn update(
        &self,
        e: &Entry,
        attributes: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
    ) -> Result<(), QueueError> {
        let record =
            self.inner.store.update_queue(e.record.id, &attributes, &tags, now_ms()).await?;
        let updated = Arc::new(entry(record, Arc::clone(&e.ready)));
        self.write().insert(e.record.name.clone(), updated);
        // A shorter wait or a changed redrive may concern parked receives.
        e.ready.notify_waiters();
        Ok(())
    }

    /// Deletes a queue and its messages.
    pub async fn delete_queue(&self, name: &str) -> Result<(), QueueError> {
        let _admin = self.inner.admin.lock().await;
        let e = self.entry(name)?;
        self.inner.store.delete_queue(e.record.id).await?;
        self.write().remove(name);
        e.ready.notify_waiters();
        tracing::info!(queue = name, "queue deleted");
        Ok(())
    }

    /// Deletes every message of a queue.
    pub async fn purge_queue(&self, name: &str) -> Result<(), QueueError> {
        let e = self.entry(name)?;
        self.inner.store.purge_queue(e.record.id).await?;
        Ok(())
    }

    /// A queue's tags.
    pub fn list_queue_tags(&self, name: &str) -> Result<BTreeMap<String, String>, QueueError> {
        Ok(self.entry(name)?.record.tags.clone())
    }

    /// Adds or replaces tags.
    pub async fn tag_queue(
        &self,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), QueueError> {
        let _admin = self.inner.admin.lock().await;
        let e = self.entry(name)?;
        let mut merged = e.record.tags.clone();
        merged.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        if merged.len() > 50 {
            return Err(QueueError::InvalidParameterValue(
                "Too many tags: at most 50 are allowed.".into(),
            ));
        }
        self.update(&e, e.record.attributes.clone(), merged).await
    }

    /// Removes tags.
    pub async fn untag_queue(&self, name: &str, keys: &[String]) -> Result<(), QueueError> {
        let _admin = self.inner.admin.lock().await;
        let e = self.entry(name)?;
        let mut merged = e.record.tags.clone();
        for k in keys {
            merged.remove(k);
        }
        self.update(&e, e.record.attributes.clone(), merged).await
    }

    /// Validates one message for queue `e` and builds what the store keeps; returns its size.
    fn prepare(
        &self,
        e: &Entry,
        msg: SendMessage,
        now: i64,
    ) -> Result<(NewMessage, usize), QueueError> {
        message::validate_body(&msg.body)?;
        let attr_size = message::validate_attributes(&msg.message_attributes)?;
        let size = msg.body.len() + attr_size;
        if size > e.config.max_message_size as usize {
            return Err(QueueError::InvalidParameterValue(format!(
                "One or more parameters are invalid. Reason: Message must be shorter than {} bytes.",
                e.config.max_message_size
            )));
        }
        let delay = msg.delay_seconds.unwrap_or(e.config.delay);
        message::validate_delay(delay)?;
        if msg.trace_header.as_ref().is_some_and(|t| t.is_empty() || t.len() > 1024) {
            return Err(QueueError::InvalidParameterValue(
                "The message system attribute 'AWSTraceHeader' is invalid.".into(),
            ));
        }
        Ok((
            NewMessage {
                message_id: uuid::Uuid::new_v4().to_string(),
                md5_of_body: md5_of_body(&msg.body),
                md5_of_attributes: md5_of_attributes(&msg.message_attributes),
                body: msg.body,
                attributes: msg.message_attributes,
                sender_id: msg.sender_id.unwrap_or_else(|| self.inner.account.account_id.clone()),
                trace_header: msg.trace_header,
                sent_ms: now,
                visible_at_ms: now + i64::from(delay) * 1000,
            },
            size,
        ))
    }

    /// Sends one message; durable when this returns `Ok`.
    pub async fn send_message(
        &self,
        queue: &str,
        msg: SendMessage,
    ) -> Result<SentMessage, QueueError> {
        let e = self.entry(queue)?;
        let (m, _) = self.prepare(&e, msg, now_ms())?;
        let sent = sent(&m);
        self.inner.store.put_messages(vec![(e.record.id, m)]).await?;
        e.ready.notify_waiters();
        Ok(sent)
    }

    /// Sends up to 10 messages identified by entry ids. Batch-level problems (empty, too many,
    /// repeated or malformed ids, total size) fail the call; the rest is per entry, in order.
    pub async fn send_message_batch(
        &self,
        queue: &str,
        entries: Vec<(String, SendMessage)>,
    ) -> Result<Vec<(String, Result<SentMessage, QueueError>)>, QueueError> {
        let e = self.entry(queue)?;
        message::validate_batch(
            entries.iter().map(|(id, _)| id.as_str()),
            "SendMessageBatchRequestEntry",
        )?;
        let now = now_ms();
        let mut results = Vec::with_capacity(entries.len());
        let mut total = 0;
        let mut to_store = Vec::new();
        for (id, msg) in entries {
            match self.prepare(&e, msg, now) {
                Ok((m, size)) => {
                    total += size;
                    results.push((id, Ok(sent(&m))));
                    to_store.push((e.record.id, m));
                }
                Err(err) => results.push((id, Err(err))),
            }
        }
        let limit = e.config.max_message_size as usize;
        if total > limit {
            return Err(QueueError::BatchRequestTooLong(limit, total));
        }
        if !to_store.is_empty() {
            self.inner.store.put_messages(to_store).await?;
            e.ready.notify_waiters();
        }
        Ok(results)
    }

    /// Receives up to `max_messages`, waiting up to the wait time for the first one.
    pub async fn receive_messages(
        &self,
        queue: &str,
        options: ReceiveOptions,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        if !(1..=10).contains(&options.max_messages) {
            return Err(QueueError::InvalidParameterValue(format!(
                "Value {} for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.",
                options.max_messages
            )));
        }
        if let Some(v) = options.visibility_timeout {
            message::validate_visibility(v)?;
        }
        let first = self.entry(queue)?;
        let wait = options.wait_time_seconds.unwrap_or(first.config.receive_wait);
        if wait > MAX_WAIT_SECONDS {
            return Err(QueueError::InvalidParameterValue(format!(
                "Value {wait} for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided."
            )));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(wait));
        loop {
            let e = self.entry(queue)?;
            let ready = e.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            let got = self.receive_once(&e, &options).await?;
            let now = tokio::time::Instant::now();
            if !got.is_empty() || now >= deadline || self.inner.closing.load(Ordering::SeqCst) {
                return Ok(got);
            }
            let nap = (deadline - now).min(RECHECK);
            tokio::select! {
                () = &mut ready => {}
                () = tokio::time::sleep(nap) => {}
            }
        }
    }

    async fn receive_once(
        &self,
        e: &Entry,
        options: &ReceiveOptions,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let redrive = e.config.redrive.as_ref().and_then(|p| {
            let dlq = self.name_from_arn(&p.dead_letter_target_arn)?;
            let dlq = self.read().get(&dlq).cloned()?;
            Some((
                RedriveRule {
                    dead_letter_queue: dlq.record.id,
                    max_receive_count: p.max_receive_count,
                },
                dlq,
            ))
        });
        let visibility = options.visibility_timeout.unwrap_or(e.config.visibility_timeout);
        let received = self
            .inner
            .store
            .receive(ReceiveRequest {
                queue: e.record.id,
                now_ms: now_ms(),
                max: options.max_messages,
                visibility_ms: i64::from(visibility) * 1000,
                retention_ms: i64::from(e.config.retention) * 1000,
                redrive: redrive.as_ref().map(|(rule, _)| *rule),
            })
            .await?;
        if received.moved_to_dead_letter > 0 {
            if let Some((_, dlq)) = &redrive {
                dlq.ready.notify_waiters();
            }
        }
        let arn = self.queue_arn(&e.record.name);
        Ok(received
            .messages
            .into_iter()
            .map(|m| {
                let attributes: BTreeMap<String, MessageAttributeValue> = m
                    .message
                    .attributes
                    .into_iter()
                    .filter(|(name, _)| attribute_wanted(name, &options.message_attribute_names))
                    .collect();
                ReceivedMessage {
                    message_id: m.message.message_id,
                    receipt_handle: message::Receipt {
                        queue: e.record.id,
                        seq: m.seq,
                        token: m.receipt_token,
                    }
                    .encode(),
                    body: m.message.body,
                    md5_of_body: m.message.md5_of_body,
                    md5_of_message_attributes: md5_of_attributes(&attributes),
                    message_attributes: attributes,
                    sender_id: m.message.sender_id,
                    trace_header: m.message.trace_header,
                    sent_timestamp_ms: m.message.sent_ms,
                    approximate_receive_count: m.receive_count,
                    approximate_first_receive_timestamp_ms: m
                        .first_receive_ms
                        .unwrap_or(m.message.sent_ms),
                    queue_arn: arn.clone(),
                }
            })
            .collect())
    }

    /// Decodes a handle and checks it belongs to this queue.
    fn receipt(e: &Entry, handle: &str) -> Result<message::Receipt, QueueError> {
        let r = message::Receipt::decode(handle)?;
        if r.queue != e.record.id {
            return Err(QueueError::ReceiptHandleIsInvalid(format!(
                "The input receipt handle \"{handle}\" is not a valid receipt handle."
            )));
        }
        Ok(r)
    }

    /// Deletes the message a receipt handle names. A well-formed handle that is no longer
    /// the message's newest (or whose message is gone) succeeds without effect, as on SQS.
    pub async fn delete_message(
        &self,
        queue: &str,
        receipt_handle: &str,
    ) -> Result<(), QueueError> {
        let e = self.entry(queue)?;
        let r = Self::receipt(&e, receipt_handle)?;
        let deleted = self.inner.store.delete_message(e.record.id, r.seq, &r.token).await?;
        if !deleted {
            tracing::debug!(queue, "delete with a stale receipt handle ignored");
        }
        Ok(())
    }

    /// Deletes up to 10 messages by entry id; per-entry results in order.
    pub async fn delete_message_batch(
        &self,
        queue: &str,
        entries: Vec<(String, String)>,
    ) -> Result<Vec<(String, Result<(), QueueError>)>, QueueError> {
        self.entry(queue)?;
        message::validate_batch(
            entries.iter().map(|(id, _)| id.as_str()),
            "DeleteMessageBatchRequestEntry",
        )?;
        let mut out = Vec::with_capacity(entries.len());
        for (id, handle) in entries {
            let result = self.delete_message(queue, &handle).await;
            if let Err(QueueError::QueueDoesNotExist | QueueError::Internal(_)) = &result {
                return result.map(|()| Vec::new());
            }
            out.push((id, result));
        }
        Ok(out)
    }

    /// Sets an in-flight message's remaining invisibility to `timeout_seconds` from now (0
    /// makes it visible at once).
    pub async fn change_message_visibility(
        &self,
        queue: &str,
        receipt_handle: &str,
        timeout_seconds: u32,
    ) -> Result<(), QueueError> {
        message::validate_visibility(timeout_seconds)?;
        let e = self.entry(queue)?;
        let r = Self::receipt(&e, receipt_handle)?;
        let now = now_ms();
        let change = self
            .inner
            .store
            .change_visibility(
                e.record.id,
                r.seq,
                &r.token,
                now,
                now + i64::from(timeout_seconds) * 1000,
            )
            .await?;
        match change {
            VisibilityChange::Changed => {
                if timeout_seconds == 0 {
                    e.ready.notify_waiters();
                }
                Ok(())
            }
            VisibilityChange::NotInFlight => Err(QueueError::MessageNotInflight),
            VisibilityChange::Unknown => Err(QueueError::InvalidParameterValue(format!(
                "Value {receipt_handle} for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change."
            ))),
        }
    }

    /// Changes the visibility of up to 10 messages: entries are (id, handle, timeout).
    pub async fn change_message_visibility_batch(
        &self,
        queue: &str,
        entries: Vec<(String, String, u32)>,
    ) -> Result<Vec<(String, Result<(), QueueError>)>, QueueError> {
        self.entry(queue)?;
        message::validate_batch(
            entries.iter().map(|(id, _, _)| id.as_str()),
            "ChangeMessageVisibilityBatchRequestEntry",
        )?;
        let mut out = Vec::with_capacity(entries.len());
        for (id, handle, timeout) in entries {
            let result = self.change_message_visibility(queue, &handle, timeout).await;
            if let Err(QueueError::QueueDoesNotExist | QueueError::Internal(_)) = &result {
                return result.map(|()| Vec::new());
            }
            out.push((id, result));
        }
        Ok(out)
    }
}

fn entry(record: QueueRecord, ready: Arc<Notify>) -> Entry {
    let config = QueueConfig::from_attributes(&record.attributes);
    Entry { record, config, ready }
}

fn sent(m: &NewMessage) -> SentMessage {
    SentMessage {
        message_id: m.message_id.clone(),
        md5_of_body: m.md5_of_body.clone(),
        md5_of_message_attributes: m.md5_of_attributes.clone(),
    }
}

/// Whether `name` is selected by `MessageAttributeNames`: `All`, `.*`, `prefix.*`, or exact.
fn attribute_wanted(name: &str, wanted: &[String]) -> bool {
    wanted.iter().any(|w| {
        w == "All"
            || w == ".*"
            || w == name
            || w.strip_suffix(".*").is_some_and(|prefix| name.starts_with(&format!("{prefix}.")))
    })
}

#[cfg(test)]
mod tests;
