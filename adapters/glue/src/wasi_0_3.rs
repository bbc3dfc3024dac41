//! The WASI 0.3 key-value interfaces, whose functions are `async`: Spin's
//! `spin:key-value/key-value@3.0.0` (spin-sdk 6 and 7) and wasmCloud's
//! `wasmcloud:keyvalue/{types,store,atomics,cas,batch}@0.2.0`.
//!
//! The functions are lifted async, but kv-virt's backends are the sync
//! WASI 0.2 interfaces underneath, so each one runs to completion when
//! called: nothing here awaits but Spin's `get-keys`, which streams its
//! pages to the app. As in the rest of the glue, every rule is
//! [`kv_core::OpenBucket`]'s; this file converts types.

use alloc::string::String;
use alloc::vec::Vec;

use kv_core::{Entry, Error, OpenBucket, SetOptions, SwapOutcome, SwapPreconditions};
use wit_bindgen::{FutureReader, StreamReader, StreamWriter};

use crate::bindings::exports::spin::key_value::key_value as spin3;
use crate::bindings::exports::wasmcloud::keyvalue as wasmcloud;
use crate::bindings::{wit_future, wit_stream};
use crate::{Adapter, BucketResource, Glue, open, present_entries};
use kv_core::CounterRange;

// ---- spin:key-value/key-value@3.0.0 ----

crate::spin_errors!(spin3::Error);

impl<A: Adapter> spin3::Guest for Glue<A> {
    type Store = BucketResource<A>;
}

/// A Spin store is a bucket: the label is the bucket's name, and `default`
/// (what `Store::open_default()` opens) is the default bucket.
impl<A: Adapter> spin3::GuestStore for BucketResource<A> {
    async fn open(label: String) -> Result<spin3::Store, spin3::Error> {
        Ok(spin3::Store::new(open::<A>(&label)?))
    }

    async fn get(&self, key: String) -> Result<Option<Vec<u8>>, spin3::Error> {
        Ok(self.0.get(&key)?)
    }

    async fn set(&self, key: String, value: Vec<u8>) -> Result<(), spin3::Error> {
        Ok(self.0.set(&key, &value)?)
    }

    async fn delete(&self, key: String) -> Result<(), spin3::Error> {
        Ok(self.0.delete(&key)?)
    }

    async fn exists(&self, key: String) -> Result<bool, spin3::Error> {
        Ok(self.0.exists(&key)?)
    }

    /// Every key of the bucket, streamed a list-keys page at a time: a
    /// page is read only once the app has taken the one before, so the
    /// bucket is never in memory whole. The future says how it ended.
    async fn get_keys(&self) -> (StreamReader<String>, FutureReader<Result<(), spin3::Error>>) {
        let (mut keys, keys_reader) = wit_stream::new::<String>();
        let (outcome, outcome_reader) = wit_future::new::<Result<(), spin3::Error>>(|| {
            Err(spin3::Error::Other("get-keys stopped before it finished".into()))
        });
        let bucket = self.0.clone();
        wit_bindgen::spawn_local(async move {
            let result = stream_keys(&bucket, &mut keys).await;
            // The end of the stream, then how it ended.
            drop(keys);
            let _ = outcome.write(result.map_err(Into::into)).await;
        });
        (keys_reader, outcome_reader)
    }
}

/// Writes every key of `bucket` into `keys`, page by page, until the
/// listing ends or the app drops its end of the stream.
async fn stream_keys<A: Adapter>(
    bucket: &OpenBucket<A>,
    keys: &mut StreamWriter<String>,
) -> Result<(), Error> {
    let mut after: Option<String> = None;
    loop {
        let (page, next) = bucket.page_after(after.as_deref(), "")?;
        if !keys.write_all(page).await.is_empty() {
            // The app stopped reading: nothing more to do.
            return Ok(());
        }
        match next {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

// ---- wasmcloud:keyvalue@0.2.0 ----

use wasmcloud::types::Error as WcError;

/// wasmCloud's named cases where kv-virt has them; a backend's failure is
/// `other(message)`.
impl From<Error> for WcError {
    fn from(e: Error) -> Self {
        match e {
            Error::NoSuchStore => WcError::NoSuchStore,
            Error::AccessDenied => WcError::AccessDenied,
            Error::InvalidArgument(_) => WcError::InvalidArgument,
            Error::PreconditionFailed(_) => WcError::PreconditionFailed,
            Error::Other(message) => WcError::Other(message),
        }
    }
}

fn entry_out(entry: Entry) -> wasmcloud::cas::Entry {
    wasmcloud::cas::Entry {
        value: entry.value,
        version: entry.version,
    }
}

impl<A: Adapter> wasmcloud::types::Guest for Glue<A> {
    type Bucket = BucketResource<A>;
}

impl<A: Adapter> wasmcloud::types::GuestBucket for BucketResource<A> {
    async fn get(&self, key: String) -> Result<Option<Vec<u8>>, WcError> {
        Ok(self.0.get(&key)?)
    }

    async fn set(
        &self,
        key: String,
        value: Vec<u8>,
        options: Option<wasmcloud::types::SetOptions>,
    ) -> Result<(), WcError> {
        let options = options.map_or(SetOptions::default(), |o| SetOptions {
            ttl_ms: o.ttl_ms,
            if_not_exists: o.if_not_exists,
        });
        Ok(self.0.set_with_options(&key, &value, options)?)
    }

    async fn delete(&self, key: String) -> Result<(), WcError> {
        Ok(self.0.delete(&key)?)
    }

    async fn exists(&self, key: String) -> Result<bool, WcError> {
        Ok(self.0.exists(&key)?)
    }

    async fn list_keys(
        &self,
        prefix: Option<String>,
        cursor: Option<String>,
    ) -> Result<wasmcloud::types::KeyResponse, WcError> {
        let (keys, cursor) = self
            .0
            .list_keys_with_prefix(prefix.as_deref().unwrap_or(""), cursor.as_deref())?;
        Ok(wasmcloud::types::KeyResponse { keys, cursor })
    }
}

impl<A: Adapter> wasmcloud::store::Guest for Glue<A> {
    async fn open(identifier: String) -> Result<wasmcloud::types::Bucket, WcError> {
        Ok(wasmcloud::types::Bucket::new(open::<A>(&identifier)?))
    }
}

impl<A: Adapter> wasmcloud::atomics::Guest for Glue<A> {
    /// A signed delta on an `s64` counter, as draft2's.
    async fn increment(
        bucket: wasmcloud::types::BucketBorrow<'_>,
        key: String,
        delta: i64,
    ) -> Result<i64, WcError> {
        Ok(bucket
            .get::<BucketResource<A>>()
            .increment_in(&key, i128::from(delta), CounterRange::S64)?)
    }
}

impl<A: Adapter> wasmcloud::cas::Guest for Glue<A> {
    async fn current(
        bucket: wasmcloud::types::BucketBorrow<'_>,
        key: String,
    ) -> Result<Option<wasmcloud::cas::Entry>, WcError> {
        let bucket = &bucket.get::<BucketResource<A>>().0;
        Ok(bucket.current_entry(&key)?.map(entry_out))
    }

    async fn swap(
        bucket: wasmcloud::types::BucketBorrow<'_>,
        key: String,
        value: Vec<u8>,
        options: wasmcloud::cas::CasOptions,
    ) -> Result<wasmcloud::cas::CasResult, WcError> {
        let bucket = &bucket.get::<BucketResource<A>>().0;
        let require = SwapPreconditions {
            version: options.require_version.as_deref(),
            value: options.require_value.as_deref(),
        };
        Ok(match bucket.swap_if(&key, &value, require)? {
            SwapOutcome::Swapped => wasmcloud::cas::CasResult::Swapped,
            SwapOutcome::Stale(entry) => wasmcloud::cas::CasResult::Stale(entry.map(entry_out)),
        })
    }
}

impl<A: Adapter> wasmcloud::batch::Guest for Glue<A> {
    /// `none` for a missing key, the key with its value otherwise.
    async fn get_many(
        bucket: wasmcloud::types::BucketBorrow<'_>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, WcError> {
        let values = bucket.get::<BucketResource<A>>().0.get_many(&keys)?;
        Ok(present_entries(keys, values))
    }

    async fn set_many(
        bucket: wasmcloud::types::BucketBorrow<'_>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), WcError> {
        Ok(bucket.get::<BucketResource<A>>().0.set_many(&key_values)?)
    }

    async fn delete_many(
        bucket: wasmcloud::types::BucketBorrow<'_>,
        keys: Vec<String>,
    ) -> Result<(), WcError> {
        Ok(bucket.get::<BucketResource<A>>().0.delete_many(&keys)?)
    }
}
