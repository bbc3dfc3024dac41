//! The WIT glue shared by every adapter: exports `store`, `atomics` and
//! `batch` of `wasi:keyvalue@0.2.0-draft` and `@0.2.0-draft2` (its `batch`
//! in both shapes: upstream PR #55's under the wasi name, the 2024 text's
//! as `kv-virt:adapters/draft2-batch-2024`), and Spin's
//! `fermyon:spin/key-value@2.0.0`, from any [`kv_core::Backend`], reading
//! the baked-in configuration through `kv-virt:config/config`. With the
//! `async` feature (the async flavour of an adapter) it also exports the
//! WASI 0.3 interfaces, Spin's `spin:key-value@3.0.0` and wasmCloud's
//! `wasmcloud:keyvalue@0.2.0` (in `wasi_0_3.rs`). All of them share the
//! instance's one [`Store`]: an app importing several sees one store.
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

use kv_core::config::{AdapterConfig, BackendOptions};
use kv_core::{Backend, CasError, CasSnapshot, CounterRange, Error, OpenBucket, Store};

#[doc(hidden)]
pub mod bindings {
    #[cfg(not(feature = "async"))]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "kv-virt:adapters/adapter",
        pub_export_macro: true,
        export_macro_name: "export_wit",
        default_bindings_module: "kv_glue::bindings",
        generate_all,
    });
    #[cfg(feature = "async")]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "kv-virt:adapters/adapter-async",
        pub_export_macro: true,
        export_macro_name: "export_wit",
        default_bindings_module: "kv_glue::bindings",
        generate_all,
    });
}

/// The WASI 0.3 interfaces of the async flavour.
#[cfg(feature = "async")]
mod wasi_0_3;

use bindings::exports::fermyon::spin::key_value as spin;
use bindings::exports::kv_virt::adapters::draft2_batch_2024 as draft2_2024;
use bindings::exports::kv_virt::adapters::migration;
use bindings::exports::wasi::keyvalue0_2_0_draft as draft;
use bindings::exports::wasi::keyvalue0_2_0_draft2 as draft2;

/// A backend that can be built from the adapter's configuration.
pub trait Adapter: Backend + Sized {
    /// What the adapter decodes its configuration's backend options to.
    type Options: BackendOptions;
    fn from_config(options: &Self::Options) -> kv_core::Result<Self>;
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

/// A bucket resource (one Rust type serves both drafts' `bucket` and
/// Spin's `store`).
pub struct BucketResource<A: Adapter>(OpenBucket<A>);

/// A draft2 `cas` resource.
pub struct CasResource<A: Adapter>(CasSnapshot<A>);

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

/// The WASI wall clock in milliseconds since the Unix epoch: what expiry
/// times are in, for the core and for backends that filter reads by them.
pub fn wall_clock_ms() -> u64 {
    let now = wasip2::clocks::wall_clock::now();
    now.seconds
        .saturating_mul(1000)
        .saturating_add(u64::from(now.nanoseconds / 1_000_000))
}

fn store<A: Adapter>() -> Result<Rc<Store<A>>, Error> {
    {
        let mut cell = STORE.0.borrow_mut();
        if cell.is_none() {
            let built: Result<Rc<Store<A>>, Error> = AdapterConfig::<A::Options>::from_bytes(
                &bindings::kv_virt::config::config::get(),
            )
            .and_then(|config| {
                Ok(Store::new(
                    A::from_config(&config.backend)?,
                    &config,
                    wall_clock_ms,
                ))
            });
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

/// `set-many` and `delete-many`, spelled the same in every `batch`: `$d` is
/// the draft whose `bucket` and `error` types the `batch` uses.
macro_rules! set_many_and_delete_many {
    ($d:ident) => {
        fn set_many(
            bucket: $d::store::BucketBorrow<'_>,
            key_values: Vec<(String, Vec<u8>)>,
        ) -> Result<(), $d::store::Error> {
            Ok(bucket.get::<BucketResource<A>>().0.set_many(&key_values)?)
        }

        fn delete_many(
            bucket: $d::store::BucketBorrow<'_>,
            keys: Vec<String>,
        ) -> Result<(), $d::store::Error> {
            Ok(bucket.get::<BucketResource<A>>().0.delete_many(&keys)?)
        }
    };
}

/// The parts of the exports both drafts spell the same way, for draft
/// module `$d`: the error type, `open`, the `bucket` methods but
/// `list-keys`, and `set-many`/`delete-many`. `$list_keys` and
/// `$get_many` are the draft's own.
macro_rules! same_in_both_drafts {
    ($d:ident, $list_keys:item, $get_many:item) => {
        impl From<Error> for $d::store::Error {
            fn from(e: Error) -> Self {
                match e {
                    Error::NoSuchStore => $d::store::Error::NoSuchStore,
                    Error::AccessDenied => $d::store::Error::AccessDenied,
                    other => $d::store::Error::Other(other.into_message()),
                }
            }
        }

        impl<A: Adapter> $d::store::Guest for Glue<A> {
            type Bucket = BucketResource<A>;

            fn open(identifier: String) -> Result<$d::store::Bucket, $d::store::Error> {
                Ok($d::store::Bucket::new(open::<A>(&identifier)?))
            }
        }

        impl<A: Adapter> $d::store::GuestBucket for BucketResource<A> {
            fn get(&self, key: String) -> Result<Option<Vec<u8>>, $d::store::Error> {
                Ok(self.0.get(&key)?)
            }

            fn set(&self, key: String, value: Vec<u8>) -> Result<(), $d::store::Error> {
                Ok(self.0.set(&key, &value)?)
            }

            fn delete(&self, key: String) -> Result<(), $d::store::Error> {
                Ok(self.0.delete(&key)?)
            }

            fn exists(&self, key: String) -> Result<bool, $d::store::Error> {
                Ok(self.0.exists(&key)?)
            }

            $list_keys
        }

        impl<A: Adapter> $d::batch::Guest for Glue<A> {
            $get_many

            set_many_and_delete_many!($d);
        }
    };
}

/// `get-many` as 0.2.0-draft and draft2's 2024 text return it: `none` for a
/// missing key, the key with its value otherwise.
fn present_entries(keys: Vec<String>, values: Vec<Option<Vec<u8>>>) -> Vec<Option<(String, Vec<u8>)>> {
    keys.into_iter()
        .zip(values)
        .map(|(key, value)| value.map(|v| (key, v)))
        .collect()
}

impl<A: Adapter> BucketResource<A> {
    /// `increment`, in the counter range (`u64`, `s64`) the interface declares.
    fn increment_in<T: TryFrom<i128>>(
        &self,
        key: &str,
        delta: i128,
        range: CounterRange,
    ) -> Result<T, Error> {
        let value = self.0.increment(key, delta, range)?;
        T::try_from(value).map_err(|_| {
            Error::other(format!(
                "counter value {} is out of range",
                kv_core::Decimal(value)
            ))
        })
    }
}

// ---- wasi:keyvalue@0.2.0-draft ----

same_in_both_drafts!(
    draft,
    fn list_keys(&self, cursor: Option<u64>) -> Result<draft::store::KeyResponse, draft::store::Error> {
        let (keys, cursor) = self.0.list_keys_u64(cursor)?;
        Ok(draft::store::KeyResponse { keys, cursor })
    },
    fn get_many(
        bucket: draft::batch::BucketBorrow<'_>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, draft::store::Error> {
        let values = bucket.get::<BucketResource<A>>().0.get_many(&keys)?;
        Ok(present_entries(keys, values))
    }
);

impl<A: Adapter> draft::atomics::Guest for Glue<A> {
    fn increment(
        bucket: draft::atomics::BucketBorrow<'_>,
        key: String,
        delta: u64,
    ) -> Result<u64, draft::store::Error> {
        Ok(bucket
            .get::<BucketResource<A>>()
            .increment_in(&key, i128::from(delta), CounterRange::U64)?)
    }
}

// ---- wasi:keyvalue@0.2.0-draft2 ----

same_in_both_drafts!(
    draft2,
    fn list_keys(&self, cursor: Option<String>) -> Result<draft2::store::KeyResponse, draft2::store::Error> {
        let (keys, cursor) = self.0.list_keys_string(cursor.as_deref())?;
        Ok(draft2::store::KeyResponse { keys, cursor })
    },
    fn get_many(
        bucket: draft2::batch::BucketBorrow<'_>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, draft2::store::Error> {
        // draft2 (upstream PR #55): every key, with `none` where missing.
        let values = bucket.get::<BucketResource<A>>().0.get_many(&keys)?;
        Ok(keys.into_iter().zip(values).collect())
    }
);

/// draft2's `batch` as its 2024 text declares it (see `wit/kv-virt.wit`).
impl<A: Adapter> draft2_2024::Guest for Glue<A> {
    fn get_many(
        bucket: draft2::store::BucketBorrow<'_>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, draft2::store::Error> {
        let values = bucket.get::<BucketResource<A>>().0.get_many(&keys)?;
        Ok(present_entries(keys, values))
    }

    set_many_and_delete_many!(draft2);
}

impl<A: Adapter> migration::Guest for Glue<A> {
    fn get_many_with_expiry(
        bucket: draft2::store::BucketBorrow<'_>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(Vec<u8>, Option<u64>)>>, draft2::store::Error> {
        Ok(bucket.get::<BucketResource<A>>().0.get_many_with_expiry(&keys)?)
    }

    fn set_many_with_expiry(
        bucket: draft2::store::BucketBorrow<'_>,
        entries: Vec<(String, Vec<u8>, Option<u64>)>,
    ) -> Result<(), draft2::store::Error> {
        Ok(bucket
            .get::<BucketResource<A>>()
            .0
            .set_many_with_expiry(&entries)?)
    }
}

impl<A: Adapter> draft2::atomics::Guest for Glue<A> {
    type Cas = CasResource<A>;

    fn increment(
        bucket: draft2::atomics::BucketBorrow<'_>,
        key: String,
        delta: i64,
    ) -> Result<i64, draft2::store::Error> {
        Ok(bucket
            .get::<BucketResource<A>>()
            .increment_in(&key, i128::from(delta), CounterRange::S64)?)
    }

    fn swap(cas: draft2::atomics::Cas, value: Vec<u8>) -> Result<(), draft2::atomics::CasError> {
        // `swap` consumes the handle: a snapshot is swapped at most once.
        let snapshot = cas.into_inner::<CasResource<A>>().0;
        snapshot.swap(&value).map_err(|e| match e {
            CasError::Conflict(fresh) => {
                draft2::atomics::CasError::CasFailed(draft2::atomics::Cas::new(CasResource(*fresh)))
            }
            CasError::Store(e) => draft2::atomics::CasError::StoreError(e.into()),
        })
    }
}

impl<A: Adapter> draft2::atomics::GuestCas for CasResource<A> {
    fn new(
        bucket: draft2::atomics::BucketBorrow<'_>,
        key: String,
    ) -> Result<draft2::atomics::Cas, draft2::store::Error> {
        let snapshot = bucket.get::<BucketResource<A>>().0.cas(key)?;
        Ok(draft2::atomics::Cas::new(CasResource(snapshot)))
    }

    fn current(&self) -> Result<Option<Vec<u8>>, draft2::store::Error> {
        Ok(self.0.current().map(<[u8]>::to_vec))
    }
}

// ---- fermyon:spin/key-value@2.0.0 ----

/// Spin's errors (`$error`, of 2.0 or 3.0), as Spin's host raises them.
/// `store-table-full` is never raised: Spin raises it when its table of
/// open stores (2^32 entries by default) is full, and kv-virt keeps no
/// such table.
macro_rules! spin_errors {
    ($error:ty) => {
        impl From<Error> for $error {
            fn from(e: Error) -> Self {
                type E = $error;
                match e {
                    Error::NoSuchStore => E::NoSuchStore,
                    Error::AccessDenied => E::AccessDenied,
                    other => E::Other(other.into_message()),
                }
            }
        }
    };
}
#[cfg(feature = "async")]
pub(crate) use spin_errors;

spin_errors!(spin::Error);

impl<A: Adapter> spin::Guest for Glue<A> {
    type Store = BucketResource<A>;
}

/// A Spin store is a bucket: the label is the bucket's name, and `default`
/// (what `Store::open_default()` opens) is the default bucket.
impl<A: Adapter> spin::GuestStore for BucketResource<A> {
    fn open(label: String) -> Result<spin::Store, spin::Error> {
        Ok(spin::Store::new(open::<A>(&label)?))
    }

    fn get(&self, key: String) -> Result<Option<Vec<u8>>, spin::Error> {
        Ok(self.0.get(&key)?)
    }

    fn set(&self, key: String, value: Vec<u8>) -> Result<(), spin::Error> {
        Ok(self.0.set(&key, &value)?)
    }

    fn delete(&self, key: String) -> Result<(), spin::Error> {
        Ok(self.0.delete(&key)?)
    }

    fn exists(&self, key: String) -> Result<bool, spin::Error> {
        Ok(self.0.exists(&key)?)
    }

    /// Every key of the bucket (Spin's `get-keys` has no cursor).
    fn get_keys(&self) -> Result<Vec<String>, spin::Error> {
        Ok(self.0.all_keys()?)
    }
}
