//! Whether a caller's session still allows writes. Reads trust an access token for its 15
//! minutes; writes also need the session behind it to be live, so a logout, a password change or
//! a revoked session stops writes at once. The caller reads the session (one `GetItem`); the
//! decision is here, once, for every function.

use time::OffsetDateTime;

use super::caller::Caller;
use crate::Session;
use shared_core::error::AppError;

/// Refuses a write unless `session` (the one named by the caller's token) is live and belongs to
/// the caller.
pub fn require_live(
    session: Option<&Session>,
    caller: &Caller,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    match session {
        Some(s) if s.is_live(now) && s.user_id == caller.user_id => Ok(()),
        _ => Err(AppError::Unauthorized {
            code: "session_ended",
            message: "This session has ended; log in again.",
        }),
    }
}

/// Refuses a write unless the session (`session_epoch`) and the access token (`token_epoch`)
/// were both issued under the user's current credential epoch (`user_epoch`; `None`: the user is
/// gone). A session behind it has ended (`session_ended`: log in again). A live session's token
/// from before the change its own session made (a password or MFA change) answers
/// `token_expired`: the holder of the refresh token gets a current one, the holder of a copied
/// access token alone gets nothing.
pub fn require_current_epoch(
    session_epoch: Option<i64>,
    user_epoch: Option<i64>,
    token_epoch: i64,
) -> Result<(), AppError> {
    match (session_epoch, user_epoch) {
        (Some(s), Some(u)) if s == u => {
            if token_epoch == u {
                Ok(())
            } else {
                Err(AppError::Unauthorized {
                    code: "token_expired",
                    message: "A valid access token is required.",
                })
            }
        }
        _ => Err(AppError::Unauthorized {
            code: "session_ended",
            message: "This session has ended; log in again.",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::permissions::Role;
    use shared_core::domain::{SessionId, TenantId, UserId};
    use time::macros::datetime;
    use time::Duration;

    const NOW: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);

    fn caller(user: &str) -> Caller {
        Caller {
            user_id: UserId::parse(user).unwrap(),
            tenant_id: TenantId::parse("t").unwrap(),
            role: Role::Member,
            via: crate::auth::caller::Via::Session {
                session_id: SessionId::parse("se-1").unwrap(),
                cred_epoch: 0,
            },
        }
    }

    fn session(user: &str) -> Session {
        Session {
            session_id: SessionId::parse("se-1").unwrap(),
            user_id: UserId::parse(user).unwrap(),
            tenant_id: TenantId::parse("t").unwrap(),
            refresh_hash: "h".into(),
            previous_hashes: vec![],
            created_at: NOW - Duration::hours(1),
            last_used_at: NOW,
            idle_expires_at: NOW + Duration::days(7),
            absolute_expires_at: NOW + Duration::days(30),
            revoked_at: None,
            ip: None,
            user_agent: None,
        }
    }

    #[test]
    fn live_session_of_the_caller_allows_writes() {
        assert!(require_live(Some(&session("u-1")), &caller("u-1"), NOW).is_ok());
    }

    #[test]
    fn missing_revoked_expired_or_foreign_sessions_refuse() {
        let mut revoked = session("u-1");
        revoked.revoked_at = Some(NOW);
        let mut idle = session("u-1");
        idle.idle_expires_at = NOW;
        for s in [None, Some(revoked), Some(idle), Some(session("u-2"))] {
            let err = require_live(s.as_ref(), &caller("u-1"), NOW).unwrap_err();
            assert_eq!((err.status(), err.code()), (401, "session_ended"));
        }
    }

    #[test]
    fn session_and_token_must_both_be_under_the_users_epoch() {
        assert!(require_current_epoch(Some(3), Some(3), 3).is_ok());
        for (session, user) in [
            (Some(2), Some(3)),
            (None, Some(3)),
            (Some(3), None),
            (None, None),
        ] {
            let err = require_current_epoch(session, user, 3).unwrap_err();
            assert_eq!((err.status(), err.code()), (401, "session_ended"));
        }
        for token in [2, 4, 0] {
            let err = require_current_epoch(Some(3), Some(3), token).unwrap_err();
            assert_eq!((err.status(), err.code()), (401, "token_expired"));
        }
    }
}
