//! A backend per bucket: the [`Backend`] of kv-route, which sends each
//! bucket to the backend of the first route that serves it
//! ([`crate::config::Route`]). Everything above it (names, the default
//! bucket, the allow-list, limits, cursors, counters) is the [`crate::Store`]'s
//! as for any backend; a bucket's limits and the name in its messages are
//! its route's backend's.
//!
//! A route's backend is built on the first `open` of one of its buckets, so
//! a route that is never used costs nothing and cannot fail the others (a
//! kv-fs route whose directory is missing fails only its own buckets).

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::config::{BackendConfig, Route};
use crate::error::Quoted;
use crate::{Backend, Bucket, DynBackend, Error, Limits, Result};

/// Builds the backend a route's configuration describes.
pub type BuildBackend = fn(&BackendConfig) -> Result<Box<DynBackend>>;

pub struct Router {
    routes: Vec<RouteState>,
    build: BuildBackend,
}

struct RouteState {
    route: Route,
    /// Built on first use.
    backend: RefCell<Option<Rc<DynBackend>>>,
}

impl Router {
    pub fn new(routes: &[Route], build: BuildBackend) -> Router {
        Router {
            routes: routes
                .iter()
                .map(|route| RouteState {
                    route: route.clone(),
                    backend: RefCell::new(None),
                })
                .collect(),
            build,
        }
    }

    /// The first route serving `bucket`.
    fn route_of(&self, bucket: &str) -> Option<&RouteState> {
        self.routes.iter().find(|state| state.route.serves(bucket))
    }

    /// The backend of the first route serving `bucket`; `access-denied` if
    /// none does.
    fn backend_of(&self, bucket: &str) -> Result<Rc<DynBackend>> {
        let state = self.route_of(bucket).ok_or(Error::AccessDenied)?;
        if let Some(backend) = &*state.backend.borrow() {
            return Ok(Rc::clone(backend));
        }
        let backend: Rc<DynBackend> = Rc::from((self.build)(&state.route.backend).map_err(|e| match e {
            Error::Other(why) => Error::other(format!(
                "bucket {}: its route's {} backend: {why}",
                Quoted(bucket),
                state.route.backend.adapter_name()
            )),
            other => other,
        })?);
        *state.backend.borrow_mut() = Some(Rc::clone(&backend));
        Ok(backend)
    }
}

impl Backend for Router {
    type Bucket = dyn Bucket;

    /// The route's backend's name ("kv-fs"); only asked of a bucket that opened.
    fn name(&self, bucket: &str) -> &'static str {
        match self.backend_of(bucket) {
            Ok(backend) => backend.name(bucket),
            Err(_) => "kv-route",
        }
    }

    fn limits(&self, bucket: &str) -> Limits {
        match self.backend_of(bucket) {
            Ok(backend) => backend.limits(bucket),
            // Only asked of a bucket that opened; nothing passes these.
            Err(_) => Limits {
                max_key_bytes: 0,
                max_value_bytes: 0,
            },
        }
    }

    fn bucket_ttl_ms(&self, bucket: &str) -> Option<u64> {
        self.route_of(bucket)?.route.ttl_ms
    }

    fn open(&self, name: &str) -> Result<Box<dyn Bucket>> {
        self.backend_of(name)?.open(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AdapterConfig, FsConfig, MemConfig};
    use crate::{KeyPage, ListRequest, Store, Versioned, erase};
    use alloc::string::{String, ToString};
    use alloc::vec;

    /// A backend that names itself after its configuration and stores nothing.
    struct Named(&'static str, usize);

    struct Empty;

    impl Bucket for Empty {
        fn get(&self, _: &str) -> Result<Option<Vec<u8>>> {
            Ok(None)
        }
        fn get_versioned(&self, _: &str) -> Result<Versioned> {
            Ok(Versioned::default())
        }
        fn set(&self, _: &str, _: &[u8], _: Option<u64>) -> Result<()> {
            Ok(())
        }
        fn delete(&self, _: &str) -> Result<()> {
            Ok(())
        }
        fn list_keys(&self, _: ListRequest<'_>) -> Result<KeyPage> {
            Ok(KeyPage::default())
        }
        fn compare_and_swap(
            &self,
            _: &str,
            _: Option<&crate::Version>,
            _: &[u8],
            _: Option<u64>,
        ) -> Result<bool> {
            Ok(true)
        }
    }

    impl Backend for Named {
        type Bucket = Empty;
        fn name(&self, _: &str) -> &'static str {
            self.0
        }
        fn limits(&self, _: &str) -> Limits {
            Limits {
                max_key_bytes: self.1,
                max_value_bytes: self.1,
            }
        }
        fn open(&self, _: &str) -> Result<Box<Empty>> {
            Ok(Box::new(Empty))
        }
    }

    fn build(config: &BackendConfig) -> Result<Box<DynBackend>> {
        match config {
            BackendConfig::Mem(_) => Ok(erase(Named("kv-mem", 10))),
            BackendConfig::Fs(fs) if fs.dir == "/missing" => Err(Error::other("no such directory")),
            BackendConfig::Fs(_) => Ok(erase(Named("kv-fs", 20))),
            _ => Err(Error::other("not in this test")),
        }
    }

    fn store() -> Rc<Store<Router>> {
        let fs = |dir: &str| {
            BackendConfig::Fs(FsConfig {
                dir: dir.into(),
                ..FsConfig::default()
            })
        };
        let routes = vec![
            Route {
                buckets: vec!["cache".into(), "tmp-*".into()],
                backend: BackendConfig::Mem(MemConfig {}),
                ttl_ms: Some(1000),
            },
            Route {
                buckets: vec!["broken".into()],
                backend: fs("/missing"),
                ttl_ms: None,
            },
            Route {
                buckets: vec!["local".into(), "default".into()],
                backend: fs("/data"),
                ttl_ms: None,
            },
        ];
        let mut config = AdapterConfig::new(BackendConfig::Routed(routes.clone()));
        config.ttl_ms = Some(5000);
        Store::new(Router::new(&routes, build), &config, || 0)
    }

    fn limit_error(store: &Rc<Store<Router>>, bucket: &str) -> String {
        let key = "k".repeat(15);
        match store.open(bucket).unwrap().get(&key) {
            Ok(_) => "no error".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn each_bucket_goes_to_the_first_route_serving_it() {
        let store = store();
        // Limits and messages are the route's backend's.
        assert!(limit_error(&store, "cache").contains("kv-mem's key limit of 10 bytes"));
        assert!(limit_error(&store, "tmp-1").contains("kv-mem's key limit"));
        assert_eq!(limit_error(&store, "local"), "no error");
        // `""` is the default bucket, routed like any other name.
        assert_eq!(limit_error(&store, ""), "no error");
    }

    #[test]
    fn a_bucket_gets_its_routes_ttl_else_the_configurations() {
        let store = store();
        assert_eq!(store.open("tmp-1").unwrap().ttl_ms(), Some(1000));
        assert_eq!(store.open("local").unwrap().ttl_ms(), Some(5000));
    }

    #[test]
    fn an_unrouted_name_is_access_denied_and_a_broken_route_fails_alone() {
        let store = store();
        assert!(matches!(store.open("other"), Err(Error::AccessDenied)));
        let e = store.open("broken").err().unwrap().to_string();
        assert!(
            e.contains("bucket \"broken\": its route's kv-fs backend: no such directory"),
            "{e}"
        );
        assert!(store.open("local").is_ok());
        // Bad names are refused before any route is asked.
        let e = store.open("../x").err().unwrap().to_string();
        assert!(e.contains("invalid bucket name"), "{e}");
    }
}
