//! Password hashing with argon2id. Hashing and verifying take tens of milliseconds of CPU, so
//! they run on a few threads of their own, never on a request's async thread.
//!
//! Each check also takes about 19 MiB (argon2's memory cost), so only [`max_concurrent`] run
//! at once in the process: a burst of anonymous logins queues for [`QUEUE_WAIT`] at most and is
//! then refused with [`PasswordError::Busy`] (503 with `Retry-After`) instead of taking the
//! replica to its memory limit. Nothing here may hash or verify outside that bound.
//!
//! The threads are few and long-lived on purpose: the allocator keeps freed memory in an arena
//! per thread, so 19 MiB computations spread over the blocking pool's many threads left
//! hundreds of megabytes behind after a burst (measured: 687 MiB after 100 wrong logins).

use std::sync::LazyLock;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;

/// Hashing failed (only on an internal argon2 error).
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// argon2 refused the input or parameters.
    #[error("cannot hash password: {0}")]
    Hash(String),
    /// Every password slot stayed taken for [`QUEUE_WAIT`]: the caller should answer 503 with
    /// `Retry-After` rather than queue without bound.
    #[error("too many password checks at once")]
    Busy,
}

impl From<PasswordError> for crate::error::ApiError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Busy => crate::error::ApiError::Busy {
                retry_after_secs: 2,
            },
            other => crate::error::ApiError::internal(other),
        }
    }
}

/// How long a password check waits for a free slot before giving up with
/// [`PasswordError::Busy`].
pub const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Password checks that may run at once: two per core (argon2 is CPU-bound, so more would only
/// add memory, not throughput).
pub fn max_concurrent() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
}

static SLOTS: LazyLock<tokio::sync::Semaphore> =
    LazyLock::new(|| tokio::sync::Semaphore::new(max_concurrent()));

/// A computation for the password threads.
type Job = Box<dyn FnOnce() + Send>;

/// The queue of the password threads ([`max_concurrent`] of them, started on first use).
static THREADS: LazyLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> = LazyLock::new(|| {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    for n in 0..max_concurrent() {
        let rx = std::sync::Arc::clone(&rx);
        let spawned = std::thread::Builder::new()
            .name(format!("password-{n}"))
            .spawn(move || {
                loop {
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a password thread");
        }
    }
    std::sync::Mutex::new(tx)
});

/// Runs one argon2 computation on the password threads inside a slot.
async fn bounded<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordError> {
    let permit = match tokio::time::timeout(QUEUE_WAIT, SLOTS.acquire()).await {
        Ok(Ok(permit)) => permit,
        // The semaphore is never closed; a timeout means every slot stayed busy.
        Ok(Err(_)) | Err(_) => return Err(PasswordError::Busy),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    // The slot moves into the job: it is held until the computation has finished, even when
    // the request is dropped meanwhile (the job runs to completion anyway).
    let job: Job = Box::new(move || {
        let result = work();
        drop(permit);
        let _ = tx.send(result);
    });
    THREADS
        .lock()
        .map_err(|_| PasswordError::Hash("the password threads are gone".to_owned()))?
        .send(job)
        .map_err(|_| PasswordError::Hash("the password threads are gone".to_owned()))?;
    rx.await
        .map_err(|_| PasswordError::Hash("the password computation was lost".to_owned()))
}

/// A stored hash that no password matches, verified when a user does not exist so that a
/// wrong user name costs the same time as a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                          7D6jkCdDk8A7JYVm4L3lHc1yQMdlfI6D+cmF8pwAr6o";

fn hash_now(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

fn verify_now(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Hashes a password (argon2id, random salt), as a PHC string.
pub async fn hash(password: &str) -> Result<String, PasswordError> {
    let password = password.to_owned();
    bounded(move || hash_now(&password)).await?
}

/// True when `password` matches `hash`. With no hash (unknown user), spends the same time and
/// answers false.
pub async fn verify(password: &str, hash: Option<&str>) -> Result<bool, PasswordError> {
    let password = password.to_owned();
    let (hash, real) = match hash {
        Some(h) => (h.to_owned(), true),
        None => (DUMMY_HASH.to_owned(), false),
    };
    let ok = bounded(move || verify_now(&password, &hash)).await?;
    Ok(ok && real)
}

/// The rule a password chosen through the API must meet, in the words shown to the person.
pub const STRENGTH_RULE: &str =
    "The password must have at least 8 characters and must differ from the user name.";

/// Checks a new password against [`STRENGTH_RULE`]; `Err` carries the rule.
pub fn check_strength(user_name: &str, password: &str) -> Result<(), &'static str> {
    let long_enough = password.chars().count() >= 8;
    let not_the_name = !password.trim().eq_ignore_ascii_case(user_name.trim());
    if long_enough && not_the_name && !password.trim().is_empty() {
        Ok(())
    } else {
        Err(STRENGTH_RULE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_password_verifies_against_its_own_hash_only() {
        let h = hash("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", Some(&h)).await.unwrap());
        assert!(!verify("wrong", Some(&h)).await.unwrap());
        assert!(!verify("correct horse", None).await.unwrap());
    }

    #[test]
    fn the_dummy_hash_is_a_valid_argon2id_hash() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn short_empty_or_name_passwords_are_refused_and_long_ones_pass() {
        assert!(check_strength("rosa", "").is_err());
        assert!(check_strength("rosa", "1234567").is_err());
        assert!(check_strength("rosalinde", "RosaLinde").is_err());
        assert!(check_strength("rosa", "        ").is_err());
        assert!(check_strength("rosa", "correct horse").is_ok());
        assert!(check_strength("rosa", "12345678").is_ok());
    }
}
