#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `RedisConnection::open` rejects a URL that does not parse with a typed
//! error naming the URL, its password masked.

use distkit_core::{DistkitError, RedisConnection};

async fn open_error(url: &str) -> DistkitError {
    RedisConnection::open(url)
        .await
        .expect_err("a URL that does not parse is refused")
}

#[tokio::test]
async fn a_bad_url_is_named_without_its_password() {
    let error = open_error("redis://app:s3cret@cache.internal:port/").await;
    let DistkitError::InvalidArgument { name, reason } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(*name, "url");
    assert!(
        reason.contains("redis://***@cache.internal:port/"),
        "{reason}"
    );
    assert!(!error.to_string().contains("s3cret"), "{error}");
}

#[tokio::test]
async fn a_url_without_a_scheme_is_named_as_given() {
    let error = open_error("localhost:6379").await;
    assert!(
        error
            .to_string()
            .contains("`localhost:6379` is not a Redis URL"),
        "{error}"
    );
}
