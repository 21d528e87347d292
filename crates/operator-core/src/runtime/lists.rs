//! How a watch fills its cache, at start and after a relist: streamed where the server offers
//! it (the objects arrive one by one as watch events, then a bookmark: `sendInitialEvents`,
//! on by default from Kubernetes 1.32), else listed in pages of [`PAGE`] — never one response
//! holding every object. Which one is asked of the server once, at start.

use std::time::Duration;

use kube::api::{Api, DynamicObject, WatchParams};
use kube::core::ApiResource;
use kube_runtime::watcher;

/// Objects per page of a paged list.
pub const PAGE: u32 = 500;

/// How long the question at start may take.
const ASK_WITHIN: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InitialLists {
    /// A list in pages of [`PAGE`], then a watch from its resourceVersion.
    #[default]
    Paged,
    /// A watch that sends the current objects first.
    Streamed,
}

impl InitialLists {
    /// A watch of everything, filled this way.
    pub fn watcher(self) -> watcher::Config {
        self.apply(watcher::Config::default())
    }

    /// `config` (its selectors and the rest), filled this way.
    pub fn apply(self, config: watcher::Config) -> watcher::Config {
        match self {
            Self::Paged => config.page_size(PAGE),
            Self::Streamed => config.streaming_lists(),
        }
    }

    /// Asks the server whether it streams: a streaming watch of `resource` (which the operator
    /// may watch) where it watches, accepted or not. A server that refuses (`sendInitialEvents`
    /// unknown, or its feature gate off), or any failure to ask, means paged lists.
    pub async fn discover(
        client: &kube::Client,
        resource: &ApiResource,
        namespace: Option<&str>,
    ) -> Self {
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
            None => Api::all_with(client.clone(), resource),
        };
        let params = WatchParams::streaming_lists().timeout(1);
        let answer = tokio::time::timeout(ASK_WITHIN, api.watch_metadata(&params, "")).await;
        let lists = match &answer {
            Ok(Ok(_)) => Self::Streamed,
            _ => Self::Paged,
        };
        match answer {
            Ok(Err(e)) => tracing::info!(lists = ?lists, reason = %e, "initial lists"),
            Err(_) => tracing::info!(lists = ?lists, reason = "no answer", "initial lists"),
            Ok(Ok(_)) => tracing::info!(lists = ?lists, "initial lists"),
        }
        lists
    }
}
