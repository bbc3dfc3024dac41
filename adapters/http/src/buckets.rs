//! Buckets are key prefixes on the service. By default a bucket's keys are
//! stored as `<key-prefix><escaped bucket name>/<key>`, where escaping turns
//! `%` into `%25` and `/` into `%2F`: bucket names may hold any character,
//! and no bucket's keys can fall under another bucket's prefix (bucket `a`
//! and key `b/c` is `a/b/c`; bucket `a/b` and key `c` is `a%2Fb/c`).
//! A configured `bucket_prefixes` entry replaces the whole prefix of that
//! bucket (the key prefix is not added): use it to reach data written by
//! other programs.

use alloc::string::String;

use kv_core::config::HttpConfig;

/// Where the keys of bucket `name` live.
pub fn prefix(config: &HttpConfig, name: &str) -> String {
    if let Some((_, prefix)) = config.bucket_prefixes.iter().find(|(bucket, _)| bucket == name) {
        return prefix.clone();
    }
    let mut prefix = config.key_prefix.clone();
    prefix.push_str(&kv_core::percent::encode(name.as_bytes(), |c| c != '/'));
    prefix.push('/');
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use kv_core::config::HttpProtocol;

    #[test]
    fn prefixes_never_nest() {
        let mut config = HttpConfig::new(HttpProtocol::Etcd, "http://127.0.0.1:2379");
        assert_eq!(prefix(&config, "a"), "a/");
        assert_eq!(prefix(&config, "a/b"), "a%2Fb/");
        assert_eq!(prefix(&config, "100%"), "100%25/");
        config.key_prefix = "app/".into();
        config.bucket_prefixes = vec![("legacy".into(), "".into())];
        assert_eq!(prefix(&config, "a"), "app/a/");
        assert_eq!(prefix(&config, "legacy"), "");
    }
}
