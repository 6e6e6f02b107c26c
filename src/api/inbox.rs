//! `GET /v1/inbox`: the threads waiting on us, urgent first, then oldest
//! wait first, each with its wait in seconds and its SLA due time; filters
//! by team, assignee, state and priority (each a range of the store's
//! inbox index, so a page costs the same among 100 or 100,000 threads).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use chrono::Utc;

use super::params;
use super::problem::ApiError;
use super::ApiState;
use crate::conversation::{Priority, ThreadState};
use crate::store::InboxFilter;
use crate::wire::{self, Page};

/// The query: `team`, `assignee`, `state` (default: open, and snoozed
/// threads whose time has come), `priority`, `limit`, `cursor`. Unknown or
/// repeated parameters are refused.
fn inbox_query(pairs: &[(String, String)]) -> Result<(InboxFilter, params::Paging), ApiError> {
    let mut filter = InboxFilter::default();
    let mut paging_pairs = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in pairs {
        if seen.contains(&key.as_str()) {
            return Err(ApiError::invalid_query(format!("{key} is given twice")));
        }
        seen.push(key);
        let text = || Some(value.trim().to_string()).filter(|v| !v.is_empty());
        match key.as_str() {
            "team" => filter.team = text(),
            "assignee" => filter.assignee = text(),
            "state" => {
                filter.state = Some(ThreadState::parse(value).ok_or_else(|| {
                    ApiError::invalid_query(
                        "state must be open, waiting_on_customer, snoozed or closed",
                    )
                })?)
            }
            "priority" => {
                filter.priority =
                    Some(Priority::parse(value).ok_or_else(|| {
                        ApiError::invalid_query("priority must be normal or urgent")
                    })?)
            }
            "limit" | "cursor" => paging_pairs.push((key.clone(), value.clone())),
            _ => {
                return Err(ApiError::invalid_query(format!(
                "unknown query parameter {key:?} (team, assignee, state, priority, limit, cursor)"
            )))
            }
        }
    }
    Ok((filter, params::paging(&paging_pairs)?))
}

/// `GET /v1/inbox`.
pub async fn list(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Page<wire::InboxItem>>, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::invalid_query(e.body_text()))?;
    let (filter, paging) = inbox_query(&pairs)?;
    let now = Utc::now();
    let page = state
        .store
        .inbox(&filter, now, paging.cursor.as_deref(), paging.limit)?;
    Ok(Json(Page {
        items: page
            .items
            .iter()
            .map(|t| wire::InboxItem::at(t, now))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_query_is_typed_once_and_refuses_what_it_does_not_know() {
        let (f, p) = inbox_query(&pairs(&[
            ("team", "support"),
            ("state", "closed"),
            ("priority", "urgent"),
            ("limit", "5"),
        ]))
        .unwrap();
        assert_eq!(f.team.as_deref(), Some("support"));
        assert_eq!(f.state, Some(ThreadState::Closed));
        assert_eq!(f.priority, Some(Priority::Urgent));
        assert_eq!(p.limit, 5);
        for bad in [
            pairs(&[("state", "pending")]),
            pairs(&[("priority", "high")]),
            pairs(&[("teams", "x")]),
            pairs(&[("team", "a"), ("team", "b")]),
            pairs(&[("limit", "0")]),
        ] {
            let e = inbox_query(&bad).err().unwrap();
            assert_eq!(e.code, "invalid_query", "{bad:?}");
        }
    }
}
