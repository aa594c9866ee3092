//! Asynchronous invocation configuration per function, version or alias
//! (`Put/Update/Get/Delete/ListFunctionEventInvokeConfig(s)`), and the lookup the
//! asynchronous workers use to find the configuration an event runs under.

use alonzo_model::{EventInvokeConfig, FunctionSetting, SettingKind, LATEST};

use crate::{Control, ControlError};

/// Fields of a `Put…`/`Update…` request; `None` leaves a field out. A destination given as
/// `Some(None)` is cleared.
#[derive(Debug, Clone, Default)]
pub struct EventInvokeInput {
    /// 0–2.
    pub maximum_retry_attempts: Option<u32>,
    /// 60–21600.
    pub maximum_event_age_seconds: Option<u32>,
    /// `DestinationConfig.OnSuccess.Destination`.
    pub on_success: Option<Option<String>>,
    /// `DestinationConfig.OnFailure.Destination`.
    pub on_failure: Option<Option<String>>,
}

/// A stored configuration and the qualified ARN it belongs to.
#[derive(Debug, Clone)]
pub struct EventInvokeView {
    /// `arn:…:function:name:qualifier`.
    pub function_arn: String,
    /// The configuration.
    pub config: EventInvokeConfig,
}

impl Control {
    /// `PutFunctionEventInvokeConfig` (`replace`: every field absent from `input` returns to
    /// its default) and `UpdateFunctionEventInvokeConfig` (merge into the existing one).
    pub async fn put_event_invoke_config(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
        input: EventInvokeInput,
        replace: bool,
    ) -> Result<EventInvokeView, ControlError> {
        let (name, qualifier) = self.event_invoke_target(function_name, qualifier).await?;
        let mut config = if replace {
            EventInvokeConfig::default()
        } else {
            self.stored_event_invoke(&name, &qualifier)
                .await?
                .ok_or_else(|| self.no_event_invoke(&name, &qualifier))?
        };
        if let Some(n) = input.maximum_retry_attempts {
            config.maximum_retry_attempts = Some(n);
        }
        if let Some(n) = input.maximum_event_age_seconds {
            config.maximum_event_age_seconds = Some(n);
        }
        if let Some(d) = input.on_success {
            config.on_success = d;
        }
        if let Some(d) = input.on_failure {
            config.on_failure = d;
        }
        config.validate()?;
        config.last_modified_ms = chrono::Utc::now().timestamp_millis();
        self.inner
            .meta
            .put_setting(&name, &qualifier, &FunctionSetting::EventInvoke(config.clone()))
            .await?;
        Ok(self.event_invoke_view(&name, &qualifier, config))
    }

    /// `GetFunctionEventInvokeConfig`.
    pub async fn get_event_invoke_config(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<EventInvokeView, ControlError> {
        let (name, qualifier) = self.event_invoke_target(function_name, qualifier).await?;
        let config = self
            .stored_event_invoke(&name, &qualifier)
            .await?
            .ok_or_else(|| self.no_event_invoke(&name, &qualifier))?;
        Ok(self.event_invoke_view(&name, &qualifier, config))
    }

    /// `DeleteFunctionEventInvokeConfig`.
    pub async fn delete_event_invoke_config(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<(), ControlError> {
        let (name, qualifier) = self.event_invoke_target(function_name, qualifier).await?;
        if self.inner.meta.delete_setting(&name, SettingKind::EventInvoke, &qualifier).await? {
            Ok(())
        } else {
            Err(self.no_event_invoke(&name, &qualifier))
        }
    }

    /// `ListFunctionEventInvokeConfigs`.
    pub async fn list_event_invoke_configs(
        &self,
        function_name: &str,
    ) -> Result<Vec<EventInvokeView>, ControlError> {
        let name = self.resolve_unqualified(function_name)?;
        self.load(&name, LATEST).await?;
        Ok(self
            .inner
            .meta
            .list_settings(Some(&name), SettingKind::EventInvoke)
            .await?
            .into_iter()
            .filter_map(|(_, qualifier, setting)| match setting {
                FunctionSetting::EventInvoke(config) => {
                    Some(self.event_invoke_view(&name, &qualifier, config))
                }
                _ => None,
            })
            .collect())
    }

    /// The configuration an asynchronous event invoked with `qualifier` (`""` for none)
    /// runs under: the qualifier's own, or Lambda's defaults.
    pub(crate) async fn effective_event_invoke(
        &self,
        name: &str,
        qualifier: &str,
    ) -> Result<EventInvokeConfig, ControlError> {
        let qualifier = if qualifier.is_empty() { LATEST } else { qualifier };
        Ok(self.stored_event_invoke(name, qualifier).await?.unwrap_or_default())
    }

    async fn stored_event_invoke(
        &self,
        name: &str,
        qualifier: &str,
    ) -> Result<Option<EventInvokeConfig>, ControlError> {
        Ok(match self.inner.meta.get_setting(name, SettingKind::EventInvoke, qualifier).await? {
            Some(FunctionSetting::EventInvoke(c)) => Some(c),
            _ => None,
        })
    }

    /// The function and qualifier (`$LATEST` when none) a request names; the version or
    /// alias must exist.
    async fn event_invoke_target(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<(String, String), ControlError> {
        let (name, qualifier) = self.resolve(function_name, qualifier)?;
        let qualifier = match qualifier {
            None => LATEST.to_owned(),
            Some(alonzo_model::Qualifier::Alias(alias)) => {
                self.load_alias(&name, &alias).await?;
                alias
            }
            Some(q) => q.as_string(),
        };
        if qualifier == LATEST || qualifier.bytes().all(|b| b.is_ascii_digit()) {
            self.load(&name, &qualifier).await?;
        }
        Ok((name, qualifier))
    }

    fn event_invoke_view(
        &self,
        name: &str,
        qualifier: &str,
        config: EventInvokeConfig,
    ) -> EventInvokeView {
        EventInvokeView {
            function_arn: self.account().qualified_function_arn(name, qualifier),
            config,
        }
    }

    fn no_event_invoke(&self, name: &str, qualifier: &str) -> ControlError {
        ControlError::NotFound(format!(
            "The function {} doesn't have an EventInvokeConfig",
            self.account().qualified_function_arn(name, qualifier)
        ))
    }
}
