//! A deliberately altered rewrite, for the tests of `verify` only: with the environment variable
//! `OMP_TEST_ALTER_REWRITE=usage_limit` the rewrite's invites allow two uses instead of Onezone's
//! one, so a test can show that `verify` names exactly that field. Read once; unset in any real
//! deployment, where the rewrite is Onezone's.

use std::sync::OnceLock;

/// The environment variable that alters the rewrite.
pub const VARIABLE: &str = "OMP_TEST_ALTER_REWRITE";

/// The `usageLimit` of a legacy invite: 1, as Onezone's legacy code sets it.
pub(super) fn usage_limit() -> u64 {
    static ALTERED: OnceLock<bool> = OnceLock::new();
    let altered = *ALTERED.get_or_init(|| {
        std::env::var(VARIABLE).is_ok_and(|v| v.split(',').any(|f| f.trim() == "usage_limit"))
    });
    if altered {
        tracing::warn!("{VARIABLE}: the rewrite's invites are altered (usageLimit 2), for tests");
        2
    } else {
        1
    }
}
