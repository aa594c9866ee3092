//! Event source mappings: `Create/Get/Update/Delete/ListEventSourceMappings`, stored with the
//! function's settings, and the supervisor that runs one poller per enabled mapping.
//!
//! The supervisor owns the mapping states: a created, re-enabled or changed mapping
//! (`Creating`, `Enabling`, `Updating`) gets a fresh poller and becomes `Enabled`; a disabled
//! one (`Disabling`) loses it and becomes `Disabled`; a deleted one (`Deleting`) loses it and
//! disappears. Pollers are chosen by the event source's service: `sqs_poller` for queues of
//! the built-in queue service; other sources (external SQS, Kafka, streams) plug in the same
//! way, as a module with a `run` function.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use alonzo_model::{
    EventPattern, EventSourceMappingRecord, FunctionSetting, MappingState, SettingKind,
    ValidationError,
};
use tokio::sync::watch;

use crate::{Control, ControlError};

/// Fields of a create or update request; `None` leaves a field out.
#[derive(Debug, Clone, Default)]
pub struct MappingInput {
    /// Function name or ARN (optionally qualified).
    pub function_name: Option<String>,
    /// Queue ARN (create only).
    pub event_source_arn: Option<String>,
    /// 1–10000 (SQS default 10).
    pub batch_size: Option<u32>,
    /// 0–300 seconds.
    pub maximum_batching_window_s: Option<u32>,
    /// Default true.
    pub enabled: Option<bool>,
    /// `["ReportBatchItemFailures"]` or empty.
    pub function_response_types: Option<Vec<String>>,
    /// `ScalingConfig.MaximumConcurrency` (2–1000); `Some(None)` clears it.
    pub maximum_concurrency: Option<Option<u32>>,
    /// `FilterCriteria.Filters[].Pattern`.
    pub filter_patterns: Option<Vec<String>>,
}

/// A page of mappings.
#[derive(Debug, Clone)]
pub struct MappingPage {
    /// The mappings.
    pub items: Vec<EventSourceMappingRecord>,
    /// Marker of the next page.
    pub next_marker: Option<String>,
}

/// Running pollers, by mapping UUID: the generation they run and how to stop them.
#[derive(Debug, Default)]
pub(crate) struct Pollers {
    running: HashMap<String, (u64, watch::Sender<bool>)>,
}

impl Control {
    /// `CreateEventSourceMapping`.
    pub async fn create_event_source_mapping(
        &self,
        input: MappingInput,
    ) -> Result<EventSourceMappingRecord, ControlError> {
        let function_name = input
            .function_name
            .clone()
            .ok_or_else(|| ValidationError::param("FunctionName is required."))?;
        let (name, qualifier) = self.resolve(&function_name, None)?;
        self.load(&name, alonzo_model::LATEST).await?;
        if let Some(alonzo_model::Qualifier::Alias(alias)) = &qualifier {
            self.load_alias(&name, alias).await?;
        }
        let arn = input
            .event_source_arn
            .clone()
            .ok_or_else(|| ValidationError::param("EventSourceArn is required."))?;
        self.check_event_source(&arn).await?;
        let _guard = self.inner.mappings_lock.lock().await;
        for existing in self.all_mappings().await? {
            if existing.event_source_arn == arn && existing.function == name {
                return Err(ControlError::Conflict(format!(
                    "An event source mapping with SQS arn (\" {arn} \") and function (\" {name} \") already exists. Please update or delete the existing mapping with UUID {}",
                    existing.uuid
                )));
            }
        }
        let mut record = EventSourceMappingRecord {
            uuid: uuid::Uuid::new_v4().to_string(),
            function: name.clone(),
            qualifier: qualifier.map(|q| q.as_string()),
            event_source_arn: arn,
            batch_size: 10,
            maximum_batching_window_s: 0,
            enabled: true,
            function_response_types: Vec::new(),
            maximum_concurrency: None,
            filter_patterns: Vec::new(),
            state: MappingState::Creating,
            state_transition_reason: "USER_INITIATED".into(),
            last_modified_ms: chrono::Utc::now().timestamp_millis(),
            generation: 1,
            tags: std::collections::BTreeMap::new(),
        };
        apply(&mut record, &input)?;
        self.inner
            .meta
            .put_setting(&name, &record.uuid, &FunctionSetting::EventSourceMapping(record.clone()))
            .await?;
        self.inner.mappings_wakeup.notify_one();
        Ok(record)
    }

    /// `GetEventSourceMapping`.
    pub async fn get_event_source_mapping(
        &self,
        uuid: &str,
    ) -> Result<EventSourceMappingRecord, ControlError> {
        self.find_mapping(uuid).await?.ok_or_else(|| mapping_not_found(uuid))
    }

    /// `UpdateEventSourceMapping`.
    pub async fn update_event_source_mapping(
        &self,
        uuid: &str,
        input: MappingInput,
    ) -> Result<EventSourceMappingRecord, ControlError> {
        let _guard = self.inner.mappings_lock.lock().await;
        let current = self.find_mapping(uuid).await?.ok_or_else(|| mapping_not_found(uuid))?;
        if current.state == MappingState::Deleting {
            return Err(ControlError::Conflict(format!(
                "The event source mapping {uuid} is being deleted."
            )));
        }
        let mut next = current.clone();
        if let Some(function_name) = &input.function_name {
            let (name, qualifier) = self.resolve(function_name, None)?;
            self.load(&name, alonzo_model::LATEST).await?;
            next.function = name;
            next.qualifier = qualifier.map(|q| q.as_string());
        }
        apply(&mut next, &input)?;
        next.state = match (current.enabled, next.enabled) {
            (false, true) => MappingState::Enabling,
            (_, false) => MappingState::Disabling,
            (true, true) => MappingState::Updating,
        };
        next.state_transition_reason = "USER_INITIATED".into();
        next.generation += 1;
        next.last_modified_ms = chrono::Utc::now().timestamp_millis();
        if next.function != current.function {
            self.inner
                .meta
                .delete_setting(&current.function, SettingKind::EventSourceMapping, uuid)
                .await?;
        }
        self.inner
            .meta
            .put_setting(&next.function, uuid, &FunctionSetting::EventSourceMapping(next.clone()))
            .await?;
        self.inner.mappings_wakeup.notify_one();
        Ok(next)
    }

    /// `DeleteEventSourceMapping`: answers with the mapping in state `Deleting`; the
    /// supervisor stops its poller and removes it.
    pub async fn delete_event_source_mapping(
        &self,
        uuid: &str,
    ) -> Result<EventSourceMappingRecord, ControlError> {
        let _guard = self.inner.mappings_lock.lock().await;
        let mut record = self.find_mapping(uuid).await?.ok_or_else(|| mapping_not_found(uuid))?;
        record.state = MappingState::Deleting;
        record.state_transition_reason = "USER_INITIATED".into();
        record.last_modified_ms = chrono::Utc::now().timestamp_millis();
        self.inner
            .meta
            .put_setting(
                &record.function,
                uuid,
                &FunctionSetting::EventSourceMapping(record.clone()),
            )
            .await?;
        self.inner.mappings_wakeup.notify_one();
        Ok(record)
    }

    /// `ListEventSourceMappings`, optionally of one source and/or function.
    pub async fn list_event_source_mappings(
        &self,
        event_source_arn: Option<&str>,
        function_name: Option<&str>,
        marker: Option<&str>,
        max_items: Option<usize>,
    ) -> Result<MappingPage, ControlError> {
        let function = match function_name {
            Some(f) => Some(self.resolve(f, None)?.0),
            None => None,
        };
        let mut all: Vec<EventSourceMappingRecord> = self
            .all_mappings()
            .await?
            .into_iter()
            .filter(|m| event_source_arn.is_none_or(|a| m.event_source_arn == a))
            .filter(|m| function.as_deref().is_none_or(|f| m.function == f))
            .collect();
        all.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        let start = marker.and_then(|m| all.iter().position(|r| r.uuid == m)).map_or(0, |i| i + 1);
        let limit = max_items.unwrap_or(100).clamp(1, 10_000);
        let items: Vec<_> = all.iter().skip(start).take(limit).cloned().collect();
        let next_marker = (start + items.len() < all.len())
            .then(|| items.last().map(|r| r.uuid.clone()))
            .flatten();
        Ok(MappingPage { items, next_marker })
    }

    /// The UUID of an event source mapping ARN, if `arn` is one.
    pub(crate) fn mapping_uuid_of(arn: &str) -> Option<&str> {
        arn.split_once(":event-source-mapping:").map(|(_, uuid)| uuid)
    }

    /// Tags of an event source mapping.
    pub(crate) async fn mapping_tags(
        &self,
        uuid: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, ControlError> {
        Ok(self.get_event_source_mapping(uuid).await?.tags)
    }

    /// Changes the tags of an event source mapping (no new generation: the poller is
    /// unaffected).
    pub(crate) async fn change_mapping_tags(
        &self,
        uuid: &str,
        change: impl FnOnce(&mut std::collections::BTreeMap<String, String>),
    ) -> Result<(), ControlError> {
        let _guard = self.inner.mappings_lock.lock().await;
        let mut record = self.find_mapping(uuid).await?.ok_or_else(|| mapping_not_found(uuid))?;
        change(&mut record.tags);
        alonzo_model::validate_tags(&record.tags)?;
        self.inner
            .meta
            .put_setting(
                &record.function,
                uuid,
                &FunctionSetting::EventSourceMapping(record.clone()),
            )
            .await?;
        Ok(())
    }

    async fn all_mappings(&self) -> Result<Vec<EventSourceMappingRecord>, ControlError> {
        Ok(self
            .inner
            .meta
            .list_settings(None, SettingKind::EventSourceMapping)
            .await?
            .into_iter()
            .filter_map(|(_, _, s)| match s {
                FunctionSetting::EventSourceMapping(m) => Some(m),
                _ => None,
            })
            .collect())
    }

    async fn find_mapping(
        &self,
        uuid: &str,
    ) -> Result<Option<EventSourceMappingRecord>, ControlError> {
        Ok(self.all_mappings().await?.into_iter().find(|m| m.uuid == uuid))
    }

    /// The event source must be a queue of the queue service that exists.
    async fn check_event_source(&self, arn: &str) -> Result<(), ControlError> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        if parts.len() != 6 || parts[0] != "arn" || parts[5].is_empty() {
            return Err(ValidationError::constraint(
                arn,
                "eventSourceArn",
                "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\\-])+:([a-z]{2}(-gov)?-[a-z]+-\\d{1})?:(\\d{12})?:(.*)",
            )
            .into());
        }
        if parts[2] != "sqs" {
            return Err(ValidationError::param(format!(
                "Event source {arn} is not supported by this server yet: use a queue of its SQS-compatible service."
            ))
            .into());
        }
        match &self.inner.queues {
            Some(queues) if queues.exists(arn).await => Ok(()),
            _ => Err(ValidationError::param(format!(
                "Error occurred while ReceiveMessage. SQS Error Code: AWS.SimpleQueueService.NonExistentQueue. SQS Error Message: The specified queue does not exist: {arn}"
            ))
            .into()),
        }
    }

    /// Runs until every `Control` is dropped: keeps one poller per enabled mapping and
    /// moves mappings through their states.
    pub(crate) async fn run_mapping_supervisor(weak: std::sync::Weak<crate::Inner>) {
        let mut pollers = Pollers::default();
        loop {
            let Some(inner) = weak.upgrade() else { break };
            let control = Control { inner };
            if let Err(e) = control.supervise(&mut pollers).await {
                tracing::warn!(error = %e, "supervising event source mappings failed");
            }
            let wakeup = Arc::clone(&control.inner);
            drop(control);
            let _ = tokio::time::timeout(Duration::from_secs(1), wakeup.mappings_wakeup.notified())
                .await;
        }
        for (_, (_, stop)) in pollers.running.drain() {
            let _ = stop.send(true);
        }
    }

    async fn supervise(&self, pollers: &mut Pollers) -> Result<(), ControlError> {
        let mappings = self.all_mappings().await?;
        let live: std::collections::HashSet<&str> =
            mappings.iter().map(|m| m.uuid.as_str()).collect();
        pollers.running.retain(|uuid, (_, stop)| {
            let keep = live.contains(uuid.as_str());
            if !keep {
                let _ = stop.send(true);
            }
            keep
        });
        for mapping in mappings {
            let running = pollers.running.get(&mapping.uuid).map(|(g, _)| *g);
            let next_state = match mapping.state {
                MappingState::Deleting => {
                    if let Some((_, stop)) = pollers.running.remove(&mapping.uuid) {
                        let _ = stop.send(true);
                    }
                    self.inner
                        .meta
                        .delete_setting(
                            &mapping.function,
                            SettingKind::EventSourceMapping,
                            &mapping.uuid,
                        )
                        .await?;
                    continue;
                }
                _ if !mapping.enabled => {
                    if let Some((_, stop)) = pollers.running.remove(&mapping.uuid) {
                        let _ = stop.send(true);
                    }
                    MappingState::Disabled
                }
                _ => {
                    if running != Some(mapping.generation) {
                        if let Some((_, stop)) = pollers.running.remove(&mapping.uuid) {
                            let _ = stop.send(true);
                        }
                        let (stop_tx, stop_rx) = watch::channel(false);
                        pollers.running.insert(mapping.uuid.clone(), (mapping.generation, stop_tx));
                        self.start_poller(mapping.clone(), stop_rx)?;
                    }
                    MappingState::Enabled
                }
            };
            if next_state != mapping.state {
                self.set_mapping_state(&mapping, next_state).await?;
            }
        }
        Ok(())
    }

    /// Records a state change unless the mapping changed meanwhile.
    async fn set_mapping_state(
        &self,
        mapping: &EventSourceMappingRecord,
        state: MappingState,
    ) -> Result<(), ControlError> {
        let _guard = self.inner.mappings_lock.lock().await;
        let Some(mut current) = self.find_mapping(&mapping.uuid).await? else { return Ok(()) };
        if current.generation != mapping.generation || current.state != mapping.state {
            return Ok(());
        }
        current.state = state;
        self.inner
            .meta
            .put_setting(
                &current.function,
                &current.uuid,
                &FunctionSetting::EventSourceMapping(current.clone()),
            )
            .await?;
        Ok(())
    }

    fn start_poller(
        &self,
        mapping: EventSourceMappingRecord,
        stop: watch::Receiver<bool>,
    ) -> Result<(), ControlError> {
        let Some(queues) = self.inner.queues.clone() else {
            return Err(ControlError::Unavailable);
        };
        let filters = mapping
            .filter_patterns
            .iter()
            .filter_map(|p| EventPattern::parse(p).ok())
            .collect::<Vec<_>>();
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(crate::sqs_poller::run(weak, queues, mapping, filters, stop));
        Ok(())
    }
}

/// Applies the given fields with Lambda's rules.
fn apply(record: &mut EventSourceMappingRecord, input: &MappingInput) -> Result<(), ControlError> {
    if let Some(n) = input.batch_size {
        if !(1..=10_000).contains(&n) {
            return Err(ValidationError::constraint(
                &n.to_string(),
                "batchSize",
                if n < 1 {
                    "Member must have value greater than or equal to 1"
                } else {
                    "Member must have value less than or equal to 10000"
                },
            )
            .into());
        }
        record.batch_size = n;
    }
    if let Some(n) = input.maximum_batching_window_s {
        if n > 300 {
            return Err(ValidationError::constraint(
                &n.to_string(),
                "maximumBatchingWindowInSeconds",
                "Member must have value less than or equal to 300",
            )
            .into());
        }
        record.maximum_batching_window_s = n;
    }
    if record.batch_size > 10 && record.maximum_batching_window_s < 1 {
        return Err(ValidationError::param(
            "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10",
        )
        .into());
    }
    if let Some(enabled) = input.enabled {
        record.enabled = enabled;
    }
    if let Some(types) = &input.function_response_types {
        if let Some(bad) = types.iter().find(|t| *t != "ReportBatchItemFailures") {
            return Err(ValidationError::constraint(
                bad,
                "functionResponseTypes",
                "Member must satisfy enum value set: [ReportBatchItemFailures]",
            )
            .into());
        }
        record.function_response_types = types.clone();
    }
    if let Some(max) = input.maximum_concurrency {
        if let Some(n) = max {
            if !(2..=1000).contains(&n) {
                return Err(ValidationError::param(format!(
                    "ScalingConfig.MaximumConcurrency must be between 2 and 1000, got {n}."
                ))
                .into());
            }
        }
        record.maximum_concurrency = max;
    }
    if let Some(patterns) = &input.filter_patterns {
        if patterns.len() > 5 {
            return Err(ValidationError::param(
                "The number of filters in FilterCriteria exceeds the limit of 5.",
            )
            .into());
        }
        for p in patterns {
            EventPattern::parse(p).map_err(|e| ValidationError::param(e.to_string()))?;
        }
        record.filter_patterns = patterns.clone();
    }
    Ok(())
}

fn mapping_not_found(uuid: &str) -> ControlError {
    ControlError::NotFound(format!(
        "The resource you requested does not exist. (Service: Lambda, Status Code: 404, Request ID: {uuid})"
    ))
}
