//! The route table: (method, path, query) to a typed [`Route`].

use crate::error::{printable, ApiError};
use crate::params::{
    CpuProfileParams, HeapActivateParams, HeapFileName, HeapParams, MemoryStatusFormat,
    QueryParams, SyncStatusKey,
};
use crate::reply::{ContentType, Reply};

/// The prefixes under which the engine routes are served. `/tifash/` is the published
/// document's typo, kept so that scripts copied from it work.
pub const ENGINE_PREFIXES: [&str; 2] = ["/tiflash/", "/tifash/"];

/// The request methods the API distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`: answered like `GET`, without the body.
    Head,
    /// `POST`
    Post,
    /// Any other method.
    Other,
}

impl Method {
    /// Classifies a method name (case-sensitive, as HTTP methods are).
    pub fn from_name(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            _ => Method::Other,
        }
    }
}

/// What [`route()`] needs to know about a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// The method as received (`GET`, `POST`, …).
    pub method: &'a str,
    /// The raw path, without the query.
    pub path: &'a str,
    /// The raw query, without the `?`.
    pub query: Option<&'a str>,
    /// The request's `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
}

/// Every route of the API, with its validated parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Route {
    /// `GET /debug/pprof/profile`
    CpuProfile(CpuProfileParams),
    /// `GET /debug/pprof/set_prof_active` (`true`) and `set_prof_inactive` (`false`).
    SetProfActive(bool),
    /// `GET /debug/pprof/heap`
    Heap(HeapParams),
    /// `GET /debug/pprof/heap_activate`
    HeapActivate(HeapActivateParams),
    /// `GET /debug/pprof/heap_list`
    HeapList,
    /// `GET /debug/pprof/heap_deactivate`
    HeapDeactivate,
    /// `GET /debug/pprof/heap_file/<name>`
    HeapFile(HeapFileName),
    /// `GET /debug/pprof/symbol` with no query: `num_symbols: 1`.
    SymbolCount,
    /// `GET /debug/pprof/symbol?ADDR+ADDR`: the raw query, parsed by the handler with
    /// [`parse_symbol_addresses`](crate::parse_symbol_addresses).
    SymbolQuery(String),
    /// `POST /debug/pprof/symbol`: addresses in the body.
    SymbolPost,
    /// `GET /debug/pprof/cmdline`
    Cmdline,
    /// `GET /debug/pprof/arena_purge`
    ArenaPurge,
    /// `GET /debug/pprof/memory_status`
    MemoryStatus(MemoryStatusFormat),
    /// `GET /tiflash/store-status`
    StoreStatus,
    /// `GET /tiflash/sync-status/<table>` and `…/keyspace/<ks>/table/<table>`
    SyncStatus(SyncStatusKey),
    /// `GET /tiflash/remote/owner/info`
    OwnerInfo,
    /// `GET /tiflash/remote/owner/resign`
    OwnerResign,
    /// `GET /tiflash/remote/gc`
    RemoteGc,
    /// `GET /tiflash/remote/upload`
    RemoteUpload,
    /// `GET /tiflash/livez`
    Livez,
    /// `GET /tiflash/readyz`
    Readyz,
}

impl Route {
    /// For `HEAD` on a route that changes state (switches profiling, starts or stops the dump
    /// thread, purges arenas, resigns, triggers GC or upload): the reply to send *instead of*
    /// acting — 200 and the media type a `GET` answers with, no body — once the server has
    /// checked the preconditions a `GET` would fail on (its 409 or 501 is sent instead). `HEAD`
    /// is a safe method: it never changes the server. `None` for routes that only read.
    pub fn head_without_effect(&self) -> Option<Reply> {
        let content_type = match self {
            Route::SetProfActive(_)
            | Route::HeapActivate(_)
            | Route::HeapDeactivate
            | Route::ArenaPurge => ContentType::Text,
            Route::OwnerResign | Route::RemoteGc | Route::RemoteUpload => ContentType::Json,
            _ => return None,
        };
        Some(Reply::new(200, content_type, bytes::Bytes::new()))
    }
}

const GET: &str = "GET, HEAD";
const GET_POST: &str = "GET, HEAD, POST";

/// Parses a request head into a [`Route`].
///
/// Errors: 404 for an unknown path, 405 for a known path with another method (with the
/// `Allow` list), 400 for a malformed parameter, id or query. Never panics.
pub fn route(req: RequestHead<'_>) -> Result<Route, ApiError> {
    let method = Method::from_name(req.method);
    let not_found = || ApiError::NotFound {
        method: printable(req.method, 16),
        path: printable(req.path, 256),
    };

    if let Some(rest) = req.path.strip_prefix("/debug/pprof/") {
        let allowed = if rest == "symbol" { GET_POST } else { GET };
        let known = matches!(
            rest,
            "profile"
                | "set_prof_active"
                | "set_prof_inactive"
                | "heap"
                | "heap_activate"
                | "heap_list"
                | "heap_deactivate"
                | "symbol"
                | "cmdline"
                | "arena_purge"
                | "memory_status"
        ) || rest.starts_with("heap_file/");
        if !known {
            return Err(not_found());
        }
        check_method(method, allowed, &req)?;
        if rest == "symbol" {
            return Ok(match (method, req.query) {
                (Method::Post, _) => Route::SymbolPost,
                (_, Some(q)) if !q.is_empty() => Route::SymbolQuery(q.to_string()),
                _ => Route::SymbolCount,
            });
        }
        if let Some(name) = rest.strip_prefix("heap_file/") {
            no_params(&req)?;
            return HeapFileName::new(name)
                .map(Route::HeapFile)
                .ok_or_else(not_found);
        }
        let q = QueryParams::parse(req.query)?;
        return Ok(match rest {
            "profile" => Route::CpuProfile(CpuProfileParams::parse(&q, req.content_type)?),
            "heap" => Route::Heap(HeapParams::parse(&q)?),
            "heap_activate" => Route::HeapActivate(HeapActivateParams::parse(&q)?),
            "memory_status" => Route::MemoryStatus(MemoryStatusFormat::parse(&q)?),
            _ => {
                q.only(&[])?;
                match rest {
                    "set_prof_active" => Route::SetProfActive(true),
                    "set_prof_inactive" => Route::SetProfActive(false),
                    "heap_list" => Route::HeapList,
                    "heap_deactivate" => Route::HeapDeactivate,
                    "cmdline" => Route::Cmdline,
                    _ => Route::ArenaPurge,
                }
            }
        });
    }

    let Some(rest) = ENGINE_PREFIXES
        .iter()
        .find_map(|p| req.path.strip_prefix(p))
    else {
        return Err(not_found());
    };

    if rest == "sync-status" || rest.starts_with("sync-status/") {
        check_method(method, GET, &req)?;
        no_params(&req)?;
        return parse_sync_status(rest.strip_prefix("sync-status").unwrap_or(""))
            .map(Route::SyncStatus);
    }

    let route = match rest {
        "store-status" => Route::StoreStatus,
        "remote/owner/info" => Route::OwnerInfo,
        "remote/owner/resign" => Route::OwnerResign,
        "remote/gc" => Route::RemoteGc,
        "remote/upload" => Route::RemoteUpload,
        "livez" => Route::Livez,
        "readyz" => Route::Readyz,
        _ => return Err(not_found()),
    };
    check_method(method, GET, &req)?;
    no_params(&req)?;
    Ok(route)
}

fn check_method(
    method: Method,
    allowed: &'static str,
    req: &RequestHead<'_>,
) -> Result<(), ApiError> {
    let ok = match method {
        Method::Get | Method::Head => true,
        Method::Post => allowed == GET_POST,
        Method::Other => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed {
            method: printable(req.method, 16),
            path: printable(req.path, 256),
            allowed,
        })
    }
}

fn no_params(req: &RequestHead<'_>) -> Result<(), ApiError> {
    QueryParams::parse(req.query)?.only(&[])
}

/// Parses what follows `sync-status`: `/<table>` or `/keyspace/<ks>/table/<table>`.
fn parse_sync_status(rest: &str) -> Result<SyncStatusKey, ApiError> {
    let segments: Vec<&str> = rest.strip_prefix('/').unwrap_or(rest).split('/').collect();
    match segments.as_slice() {
        [table] if !table.is_empty() => Ok(SyncStatusKey { keyspace_id: None, table_id: parse_id(table, "table id")? }),
        ["keyspace", ks, "table", table] => Ok(SyncStatusKey {
            keyspace_id: Some(parse_id(ks, "keyspace id")?),
            table_id: parse_id(table, "table id")?,
        }),
        _ => Err(ApiError::BadRequest(format!(
            "invalid sync-status path '{}': expected /tiflash/sync-status/<table_id> or /tiflash/sync-status/keyspace/<keyspace_id>/table/<table_id>",
            printable(rest, 128)
        ))),
    }
}

/// A decimal id of type `T` (digits only: no sign, no spaces).
fn parse_id<T>(raw: &str, what: &str) -> Result<T, ApiError>
where
    T: std::str::FromStr + std::fmt::Display,
    T: Bounded,
{
    let expected = || {
        ApiError::BadRequest(format!(
            "invalid {what} '{}': expected decimal digits for an integer from 0 to {}",
            printable(raw, 64),
            T::MAX_DISPLAY
        ))
    };
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(expected());
    }
    raw.parse::<T>().map_err(|_| expected())
}

/// The largest value of an id type, for error sentences.
trait Bounded {
    const MAX_DISPLAY: &'static str;
}

impl Bounded for i64 {
    const MAX_DISPLAY: &'static str = "9223372036854775807";
}

impl Bounded for u32 {
    const MAX_DISPLAY: &'static str = "4294967295";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path_and_query: &str) -> Result<Route, ApiError> {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        route(RequestHead {
            method: "GET",
            path,
            query,
            content_type: None,
        })
    }

    #[test]
    fn engine_routes_under_both_prefixes() {
        for prefix in ENGINE_PREFIXES {
            assert_eq!(
                get(&format!("{prefix}store-status")),
                Ok(Route::StoreStatus)
            );
            assert_eq!(
                get(&format!("{prefix}sync-status/100")),
                Ok(Route::SyncStatus(SyncStatusKey {
                    keyspace_id: None,
                    table_id: 100
                }))
            );
            assert_eq!(
                get(&format!("{prefix}sync-status/keyspace/1/table/2")),
                Ok(Route::SyncStatus(SyncStatusKey {
                    keyspace_id: Some(1),
                    table_id: 2
                }))
            );
            assert_eq!(
                get(&format!("{prefix}remote/owner/info")),
                Ok(Route::OwnerInfo)
            );
        }
    }

    #[test]
    fn bad_sync_status_paths_are_400() {
        for bad in [
            "/tiflash/sync-status/100abc",
            "/tiflash/sync-status/-1",
            "/tiflash/sync-status/9223372036854775808",
            "/tiflash/sync-status/keyspace/1/tabel/1",
            "/tiflash/sync-status/keyspace/4294967296/table/1",
            "/tiflash/sync-status/",
            "/tiflash/sync-status",
            "/tiflash/sync-status/1/2",
            "/tiflash/sync-status/%31",
        ] {
            let e = get(bad).unwrap_err();
            assert_eq!(e.status(), 400, "{bad}: {e}");
        }
        assert!(get("/tiflash/sync-status/abc")
            .unwrap_err()
            .to_string()
            .contains("table id 'abc'"));
    }

    #[test]
    fn unknown_and_wrong_method() {
        assert_eq!(get("/x").unwrap_err().to_string(), "path not found: GET /x");
        assert_eq!(get("/tiflash/nope").unwrap_err().status(), 404);
        assert_eq!(
            get("/debug/pprof/heap_file/../etc").unwrap_err().status(),
            404
        );
        let e = route(RequestHead {
            method: "POST",
            path: "/tiflash/store-status",
            query: None,
            content_type: None,
        })
        .unwrap_err();
        assert_eq!(e.status(), 405);
        assert_eq!(e.to_reply().allow, Some("GET, HEAD"));
        let r = route(RequestHead {
            method: "POST",
            path: "/debug/pprof/symbol",
            query: None,
            content_type: None,
        });
        assert_eq!(r, Ok(Route::SymbolPost));
        let r = route(RequestHead {
            method: "HEAD",
            path: "/debug/pprof/symbol",
            query: None,
            content_type: None,
        });
        assert_eq!(r, Ok(Route::SymbolCount));
    }

    #[test]
    fn params_are_checked() {
        assert_eq!(
            get("/debug/pprof/profile?seconds=0").unwrap_err().status(),
            400
        );
        assert_eq!(get("/tiflash/store-status?x=1").unwrap_err().status(), 400);
        assert!(matches!(
            get("/debug/pprof/heap_activate"),
            Ok(Route::HeapActivate(_))
        ));
        assert_eq!(
            get("/debug/pprof/symbol?0x1+0x2"),
            Ok(Route::SymbolQuery("0x1+0x2".into()))
        );
    }
}
