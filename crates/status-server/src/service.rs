//! The handler between the transport and the route families: parse, dispatch, reply.
//!
//! To add a route family: a module in `routes/`, its state in `state.rs`, and its arms in
//! [`Service::dispatch`]. Routes whose family is not built yet answer 404.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use status_api::{ApiError, Reply, RequestHead, Route};
use status_http::{Handler, Request, Response};

use crate::routes::cpu;
use crate::routes::engine;
use crate::routes::heap;
use crate::routes::remote;
use crate::routes::symbol;
use crate::state::{AppState, HEAVY_REQUESTS, HEAVY_WAIT};

/// The status server's [`Handler`].
#[derive(Debug, Clone)]
pub(crate) struct Service {
    state: Arc<AppState>,
}

impl Service {
    pub(crate) fn new(state: Arc<AppState>) -> Self {
        Service { state }
    }

    async fn dispatch(&self, route: Route, req: &Request) -> Result<Reply, ApiError> {
        let state = &self.state;
        if req.method() == http::Method::HEAD {
            if let Some(reply) = route.head_without_effect() {
                // Same status as a GET would get, without acting.
                heap::head_precondition(&state.heap, &route)?;
                return Ok(reply);
            }
        }
        let _slot = match route {
            Route::Heap(_)
            | Route::HeapFile(_)
            | Route::SymbolPost
            | Route::SymbolQuery(_)
            | Route::MemoryStatus(_)
            | Route::ArenaPurge => Some(heavy_slot(state).await?),
            _ => None,
        };
        match route {
            Route::StoreStatus => Ok(engine::store_status(state)),
            Route::SyncStatus(key) => Ok(engine::sync_status(state, key)),
            Route::Livez => Ok(engine::livez()),
            Route::Readyz => engine::readyz(state),
            Route::CpuProfile(params) => {
                cpu::profile(
                    &state.cpu,
                    &state.config.data_dir,
                    params,
                    req.method() == http::Method::HEAD,
                )
                .await
            }
            Route::Cmdline => Ok(cpu::cmdline()),
            Route::SymbolCount => Ok(symbol::count()),
            Route::SymbolQuery(query) => {
                symbol::resolve(&state.symbolizer, Bytes::from(query)).await
            }
            Route::SymbolPost => symbol::resolve(&state.symbolizer, req.body().clone()).await,
            Route::SetProfActive(on) => heap::set_prof_active(on),
            Route::Heap(params) => heap::dump(&state.heap, &state.heap_views, params).await,
            Route::HeapActivate(params) => heap::activate(&state.heap, params).await,
            Route::HeapList => heap::list(&state.heap).await,
            Route::HeapFile(name) => {
                heap::file(&state.heap, name, req.method().as_str(), req.uri().path()).await
            }
            Route::HeapDeactivate => heap::deactivate(&state.heap).await,
            Route::ArenaPurge => heap::arena_purge().await,
            Route::MemoryStatus(format) => heap::memory_status(format).await,
            Route::OwnerInfo => remote::owner_info(&state.remote).await,
            Route::OwnerResign => remote::owner_resign(&state.remote).await,
            Route::RemoteGc => remote::gc(&state.remote).await,
            Route::RemoteUpload => remote::upload(&state.remote),
            _ => Err(ApiError::NotFound {
                method: req.method().to_string(),
                path: req.uri().path().to_string(),
            }),
        }
    }
}

/// A slot for an expensive request, waiting at most [`HEAVY_WAIT`].
async fn heavy_slot(state: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    let busy = || {
        ApiError::Unavailable(format!(
            "too many heap, symbol and statistics requests are running (at most {HEAVY_REQUESTS} at once) and none finished within {} s; retry later",
            HEAVY_WAIT.as_secs()
        ))
    };
    match tokio::time::timeout(HEAVY_WAIT, state.heavy.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(busy()),
    }
}

impl Handler for Service {
    async fn handle(&self, req: Request) -> Response {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let head = RequestHead {
            method: req.method().as_str(),
            path: req.uri().path(),
            query: req.uri().query(),
            content_type,
        };
        let reply = match status_api::route(head) {
            Ok(route) => self.dispatch(route, &req).await.unwrap_or_else(|e| {
                if e.status() >= 500 {
                    tracing::warn!(path = req.uri().path(), error = %e, "request failed");
                }
                e.to_reply()
            }),
            Err(e) => e.to_reply(),
        };
        to_response(reply)
    }
}

fn to_response(reply: Reply) -> Response {
    let mut resp = http::Response::new(Bytes::clone(&reply.body));
    *resp.status_mut() =
        http::StatusCode::from_u16(reply.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type.as_str()),
    );
    if let Some(allow) = reply.allow {
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
    }
    resp
}
