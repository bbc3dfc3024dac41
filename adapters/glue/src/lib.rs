//! The WIT glue shared by every adapter: exports `store`, `atomics` and
//! `batch` of `wasi:keyvalue@0.2.0-draft` and `@0.2.0-draft2` from any
//! [`kv_core::Backend`], reading the baked-in configuration through
//! `kv-virt:config/config`.
//!
//! This layer only converts types; every rule lives in [`kv_core::Store`].
//! An adapter crate implements [`Adapter`] and calls [`export_adapter!`].
//!
//! Adapters are `no_std`: without the C library they import only the WASI
//! interfaces their backend uses. This crate gives them, on wasm32, the
//! allocator and the panic handler std would have.

#![no_std]

extern crate alloc;

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::any::Any;
use core::cell::RefCell;
use core::marker::PhantomData;

use kv_core::config::AdapterConfig;
use kv_core::{Backend, CasError, CasSnapshot, CounterRange, Error, OpenBucket, Store};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "kv-virt:adapters/adapter",
        pub_export_macro: true,
        export_macro_name: "export_wit",
        default_bindings_module: "kv_glue::bindings",
        generate_all,
    });
}

use bindings::exports::wasi::keyvalue0_2_0_draft as draft;
use bindings::exports::wasi::keyvalue0_2_0_draft2 as draft2;

/// A backend that can be built from the adapter's configuration.
pub trait Adapter: Backend + Sized {
    fn from_config(config: &AdapterConfig) -> kv_core::Result<Self>;
}

/// Exports both `wasi:keyvalue` drafts from an [`Adapter`]:
/// `kv_glue::export_adapter!(MyBackend);`
#[macro_export]
macro_rules! export_adapter {
    ($backend:ty) => {
        type KvGlueExports = $crate::Glue<$backend>;
        $crate::bindings::export_wit!(KvGlueExports with_types_in $crate::bindings);
    };
}

/// The type the WIT exports are implemented on.
pub struct Glue<A>(PhantomData<A>);

/// A bucket resource (one Rust type serves both drafts' `bucket`).
pub struct BucketResource<A: Adapter>(OpenBucket<A>);

/// A draft2 `cas` resource.
pub struct CasResource<A: Adapter>(RefCell<Option<CasSnapshot<A>>>);

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

// `memcmp`, `memcpy` and friends: compiler-builtins leaves them to the C
// library on wasm32-wasip2. Linking it statically pulls in just those
// functions, none of its start-up code or WASI imports.
#[cfg(target_arch = "wasm32")]
#[link(name = "c")]
unsafe extern "C" {}

/// The canonical ABI's allocator, which std provides on wasm32-wasip2 and a
/// `no_std` component must provide itself.
///
/// # Safety
/// Called by the component model runtime with the canonical ABI contract:
/// `old_ptr`/`old_len`/`align` describe an earlier allocation (or null/0).
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cabi_realloc(
    old_ptr: *mut u8,
    old_len: usize,
    align: usize,
    new_len: usize,
) -> *mut u8 {
    use alloc::alloc::{Layout, alloc, handle_alloc_error, realloc};
    if new_len == 0 {
        return align as *mut u8;
    }
    let Ok(layout) = Layout::from_size_align(new_len, align) else {
        core::arch::wasm32::unreachable()
    };
    // SAFETY: per the contract above; the layouts are non-zero-sized.
    let ptr = unsafe {
        if old_len == 0 {
            alloc(layout)
        } else {
            realloc(
                old_ptr,
                Layout::from_size_align_unchecked(old_len, align),
                new_len,
            )
        }
    };
    if ptr.is_null() {
        handle_alloc_error(layout);
    }
    ptr
}

/// A panic is a bug (every error is a `wasi:keyvalue` error): trap, as
/// std's `panic = "abort"` would.
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

/// The instance's store, built on first use from the configuration (or the
/// configuration error, which every `open` then reports).
struct InstanceStore(RefCell<Option<Rc<dyn Any>>>);

// SAFETY: a component instance is single-threaded; nothing here is shared
// across threads.
unsafe impl Sync for InstanceStore {}

static STORE: InstanceStore = InstanceStore(RefCell::new(None));

fn store<A: Adapter>() -> Result<Rc<Store<A>>, Error> {
    {
        let mut cell = STORE.0.borrow_mut();
        if cell.is_none() {
            let built: Result<Rc<Store<A>>, Error> =
                AdapterConfig::from_bytes(&bindings::kv_virt::config::config::get())
                    .and_then(|config| Ok(Store::new(A::from_config(&config)?, &config)));
            *cell = Some(Rc::new(built) as Rc<dyn Any>);
        }
    }
    let cell = STORE.0.borrow();
    let any = cell.as_ref().expect("initialized above");
    any.downcast_ref::<Result<Rc<Store<A>>, Error>>()
        .expect("one adapter type per instance")
        .clone()
}

fn open<A: Adapter>(name: &str) -> Result<BucketResource<A>, Error> {
    Ok(BucketResource(store::<A>()?.open(name)?))
}

fn draft_error(e: Error) -> draft::store::Error {
    match e {
        Error::NoSuchStore => draft::store::Error::NoSuchStore,
        Error::AccessDenied => draft::store::Error::AccessDenied,
        Error::Other(message) => draft::store::Error::Other(message),
    }
}

fn draft2_error(e: Error) -> draft2::store::Error {
    match e {
        Error::NoSuchStore => draft2::store::Error::NoSuchStore,
        Error::AccessDenied => draft2::store::Error::AccessDenied,
        Error::Other(message) => draft2::store::Error::Other(message),
    }
}

/// A `u64`/`s64` from the counter range the draft declares.
fn counter_out<T: TryFrom<i128>>(value: i128) -> Result<T, Error> {
    T::try_from(value).map_err(|_| Error::other(format!("counter value {value} is out of range")))
}

// ---- wasi:keyvalue@0.2.0-draft ----

impl<A: Adapter> draft::store::Guest for Glue<A> {
    type Bucket = BucketResource<A>;

    fn open(identifier: String) -> Result<draft::store::Bucket, draft::store::Error> {
        open::<A>(&identifier)
            .map(draft::store::Bucket::new)
            .map_err(draft_error)
    }
}

impl<A: Adapter> draft::store::GuestBucket for BucketResource<A> {
    fn get(&self, key: String) -> Result<Option<Vec<u8>>, draft::store::Error> {
        self.0.get(&key).map_err(draft_error)
    }

    fn set(&self, key: String, value: Vec<u8>) -> Result<(), draft::store::Error> {
        self.0.set(&key, &value).map_err(draft_error)
    }

    fn delete(&self, key: String) -> Result<(), draft::store::Error> {
        self.0.delete(&key).map_err(draft_error)
    }

    fn exists(&self, key: String) -> Result<bool, draft::store::Error> {
        self.0.exists(&key).map_err(draft_error)
    }

    fn list_keys(&self, cursor: Option<u64>) -> Result<draft::store::KeyResponse, draft::store::Error> {
        let (keys, cursor) = self.0.list_keys_u64(cursor).map_err(draft_error)?;
        Ok(draft::store::KeyResponse { keys, cursor })
    }
}

impl<A: Adapter> draft::atomics::Guest for Glue<A> {
    fn increment(
        bucket: draft::atomics::BucketBorrow<'_>,
        key: String,
        delta: u64,
    ) -> Result<u64, draft::store::Error> {
        let bucket = bucket.get::<BucketResource<A>>();
        bucket
            .0
            .increment(&key, i128::from(delta), CounterRange::U64)
            .and_then(counter_out)
            .map_err(draft_error)
    }
}

impl<A: Adapter> draft::batch::Guest for Glue<A> {
    fn get_many(
        bucket: draft::batch::BucketBorrow<'_>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, draft::store::Error> {
        let values = bucket
            .get::<BucketResource<A>>()
            .0
            .get_many(&keys)
            .map_err(draft_error)?;
        Ok(keys
            .into_iter()
            .zip(values)
            .map(|(key, value)| value.map(|v| (key, v)))
            .collect())
    }

    fn set_many(
        bucket: draft::batch::BucketBorrow<'_>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), draft::store::Error> {
        bucket
            .get::<BucketResource<A>>()
            .0
            .set_many(&key_values)
            .map_err(draft_error)
    }

    fn delete_many(
        bucket: draft::batch::BucketBorrow<'_>,
        keys: Vec<String>,
    ) -> Result<(), draft::store::Error> {
        bucket
            .get::<BucketResource<A>>()
            .0
            .delete_many(&keys)
            .map_err(draft_error)
    }
}

// ---- wasi:keyvalue@0.2.0-draft2 ----

impl<A: Adapter> draft2::store::Guest for Glue<A> {
    type Bucket = BucketResource<A>;

    fn open(identifier: String) -> Result<draft2::store::Bucket, draft2::store::Error> {
        open::<A>(&identifier)
            .map(draft2::store::Bucket::new)
            .map_err(draft2_error)
    }
}

impl<A: Adapter> draft2::store::GuestBucket for BucketResource<A> {
    fn get(&self, key: String) -> Result<Option<Vec<u8>>, draft2::store::Error> {
        self.0.get(&key).map_err(draft2_error)
    }

    fn set(&self, key: String, value: Vec<u8>) -> Result<(), draft2::store::Error> {
        self.0.set(&key, &value).map_err(draft2_error)
    }

    fn delete(&self, key: String) -> Result<(), draft2::store::Error> {
        self.0.delete(&key).map_err(draft2_error)
    }

    fn exists(&self, key: String) -> Result<bool, draft2::store::Error> {
        self.0.exists(&key).map_err(draft2_error)
    }

    fn list_keys(&self, cursor: Option<String>) -> Result<draft2::store::KeyResponse, draft2::store::Error> {
        let (keys, cursor) = self.0.list_keys_string(cursor.as_deref()).map_err(draft2_error)?;
        Ok(draft2::store::KeyResponse { keys, cursor })
    }
}

impl<A: Adapter> draft2::atomics::Guest for Glue<A> {
    type Cas = CasResource<A>;

    fn increment(
        bucket: draft2::atomics::BucketBorrow<'_>,
        key: String,
        delta: i64,
    ) -> Result<i64, draft2::store::Error> {
        let bucket = bucket.get::<BucketResource<A>>();
        bucket
            .0
            .increment(&key, i128::from(delta), CounterRange::S64)
            .and_then(counter_out)
            .map_err(draft2_error)
    }

    fn swap(cas: draft2::atomics::Cas, value: Vec<u8>) -> Result<(), draft2::atomics::CasError> {
        let snapshot = cas.into_inner::<CasResource<A>>().0.into_inner();
        let Some(snapshot) = snapshot else {
            return Err(draft2::atomics::CasError::StoreError(draft2_error(Error::other(
                "this cas handle was already used",
            ))));
        };
        snapshot.swap(&value).map_err(|e| match e {
            CasError::Conflict(fresh) => draft2::atomics::CasError::CasFailed(draft2::atomics::Cas::new(
                CasResource(RefCell::new(Some(fresh))),
            )),
            CasError::Store(e) => draft2::atomics::CasError::StoreError(draft2_error(e)),
        })
    }
}

impl<A: Adapter> draft2::atomics::GuestCas for CasResource<A> {
    fn new(
        bucket: draft2::atomics::BucketBorrow<'_>,
        key: String,
    ) -> Result<draft2::atomics::Cas, draft2::store::Error> {
        let snapshot = bucket
            .get::<BucketResource<A>>()
            .0
            .cas(key)
            .map_err(draft2_error)?;
        Ok(draft2::atomics::Cas::new(CasResource(RefCell::new(Some(
            snapshot,
        )))))
    }

    fn current(&self) -> Result<Option<Vec<u8>>, draft2::store::Error> {
        match &*self.0.borrow() {
            Some(snapshot) => Ok(snapshot.current().map(<[u8]>::to_vec)),
            None => Err(draft2_error(Error::other("this cas handle was already used"))),
        }
    }
}

impl<A: Adapter> draft2::batch::Guest for Glue<A> {
    fn get_many(
        bucket: draft2::batch::BucketBorrow<'_>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, draft2::store::Error> {
        let values = bucket
            .get::<BucketResource<A>>()
            .0
            .get_many(&keys)
            .map_err(draft2_error)?;
        Ok(keys.into_iter().zip(values).collect())
    }

    fn set_many(
        bucket: draft2::batch::BucketBorrow<'_>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), draft2::store::Error> {
        bucket
            .get::<BucketResource<A>>()
            .0
            .set_many(&key_values)
            .map_err(draft2_error)
    }

    fn delete_many(
        bucket: draft2::batch::BucketBorrow<'_>,
        keys: Vec<String>,
    ) -> Result<(), draft2::store::Error> {
        bucket
            .get::<BucketResource<A>>()
            .0
            .delete_many(&keys)
            .map_err(draft2_error)
    }
}
