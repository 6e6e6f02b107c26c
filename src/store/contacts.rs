//! Contact profiles (the CRM link) and their indexes: by tag, by the CRM's
//! external id, and a small search entry per contact for `q`.
//!
//! A profile and its index entries change in one transaction (a PUT, one
//! batch of an import, an erasure), so an index never names a profile that
//! says otherwise. Lists go in number order with a cursor (the hex of the
//! last number served), whichever index they read.

use std::ops::Bound;

use sled::transaction::TransactionalTree;
use sled::{Transactional, Tree};

use super::consent::{ContactProfile, ProfileRefused, ProfileUpdate, ProfileWrite};
use super::keys::SEP;
use super::query::LIST_SCAN_BUDGET;
use super::{
    from_json, from_json_tx, to_json, unwrap_tx, Page, Result, Store, StoreError, TxError,
};

/// Rows an import writes per transaction (then waits for the disk): big
/// enough that a 100,000-row import is quick, small enough that a
/// transaction's write set stays a few MB.
pub const IMPORT_BATCH: usize = 1_000;

/// The trees of this file, opened with the store.
pub(crate) struct Trees {
    /// tag, SEP, contact -> (): a tag's contacts in number order. Tags hold
    /// no control characters (`ContactProfile::check`), so SEP ends the tag.
    tags: Tree,
    /// external id -> contact: the CRM's id is unique among contacts.
    external_ids: Tree,
    /// contact -> lowercased name, SEP, lowercased external id: what `q`
    /// matches, a few dozen bytes a contact, so a scan reads little.
    search: Tree,
}

impl Trees {
    /// Open the indexes; a store whose profiles predate them (time zones
    /// only) has them built here, once, so every profile is listed.
    pub(crate) fn open(db: &sled::Db) -> Result<Trees> {
        let trees = Trees {
            tags: db.open_tree("contact_tags")?,
            external_ids: db.open_tree("contact_external_ids")?,
            search: db.open_tree("contact_search")?,
        };
        let profiles = db.open_tree("profiles")?;
        if trees.search.is_empty() && !profiles.is_empty() {
            trees.build(&profiles)?;
        }
        Ok(trees)
    }

    /// Index every profile in `profiles` (written before the indexes were).
    fn build(&self, profiles: &Tree) -> Result<()> {
        for entry in profiles.iter() {
            let (key, raw) = entry?;
            let profile: ContactProfile = from_json(&key, &raw)?;
            let contact = String::from_utf8_lossy(&key);
            for tag in &profile.tags {
                self.tags.insert(tag_key(tag, &contact), &[])?;
            }
            if let Some(id) = &profile.external_id {
                self.external_ids.insert(id.as_bytes(), key.as_ref())?;
            }
            self.search.insert(&key, search_entry(&profile))?;
        }
        Ok(())
    }
}

/// A contact's number and profile, as lists give them.
pub type NumberedProfile = (String, ContactProfile);

/// Which contacts a list wants (both: contacts with the tag that match `q`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactQuery {
    /// Contacts with this tag (exact).
    pub tag: Option<String>,
    /// A case-insensitive substring of the name or the external id, or of
    /// the number (spaces, dashes, dots and parentheses in `q` ignored there).
    pub q: Option<String>,
}

/// The trees a profile write touches, inside one transaction.
struct ProfileTx<'a> {
    profiles: &'a TransactionalTree,
    tags: &'a TransactionalTree,
    external_ids: &'a TransactionalTree,
    search: &'a TransactionalTree,
}

fn tag_key(tag: &str, contact: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(tag.len() + 1 + contact.len());
    key.extend_from_slice(tag.as_bytes());
    key.push(SEP);
    key.extend_from_slice(contact.as_bytes());
    key
}

fn search_entry(profile: &ContactProfile) -> Vec<u8> {
    let mut entry = profile
        .name
        .as_deref()
        .unwrap_or("")
        .to_lowercase()
        .into_bytes();
    entry.push(SEP);
    entry.extend_from_slice(
        profile
            .external_id
            .as_deref()
            .unwrap_or("")
            .to_lowercase()
            .as_bytes(),
    );
    entry
}

impl ProfileTx<'_> {
    fn read(&self, contact: &str) -> std::result::Result<Option<ContactProfile>, TxError> {
        match self.profiles.get(contact.as_bytes())? {
            Some(raw) => Ok(Some(from_json_tx(contact.as_bytes(), &raw)?)),
            None => Ok(None),
        }
    }

    /// Store `new` (normalized, checked) as `contact`'s profile in place of
    /// what it had, with its index entries.
    fn write(
        &self,
        contact: &str,
        new: ContactProfile,
    ) -> std::result::Result<ProfileWrite, TxError> {
        let new = new.normalized();
        if let Err(refused) = new.check() {
            return Ok(ProfileWrite::Refused(refused));
        }
        if let Some(id) = &new.external_id {
            if let Some(owner) = self.external_ids.get(id.as_bytes())? {
                if owner.as_ref() != contact.as_bytes() {
                    return Ok(ProfileWrite::Refused(ProfileRefused {
                        code: "external_id_taken",
                        detail: format!("external_id {id:?} is already another contact's"),
                    }));
                }
            }
        }
        let old = self.read(contact)?;
        if let Some(old) = &old {
            self.unindex(contact, old)?;
        }
        for tag in &new.tags {
            self.tags.insert(tag_key(tag, contact), &[])?;
        }
        if let Some(id) = &new.external_id {
            self.external_ids
                .insert(id.as_bytes(), contact.as_bytes())?;
        }
        self.search.insert(contact.as_bytes(), search_entry(&new))?;
        self.profiles.insert(contact.as_bytes(), to_json(&new)?)?;
        Ok(if old.is_some() {
            ProfileWrite::Updated
        } else {
            ProfileWrite::Created
        })
    }

    fn unindex(&self, contact: &str, old: &ContactProfile) -> std::result::Result<(), TxError> {
        for tag in &old.tags {
            self.tags.remove(tag_key(tag, contact))?;
        }
        if let Some(id) = &old.external_id {
            // Only if it is still this contact's (it always is: defensive).
            if self
                .external_ids
                .get(id.as_bytes())?
                .is_some_and(|owner| owner.as_ref() == contact.as_bytes())
            {
                self.external_ids.remove(id.as_bytes())?;
            }
        }
        self.search.remove(contact.as_bytes())?;
        Ok(())
    }

    fn remove(&self, contact: &str) -> std::result::Result<bool, TxError> {
        let Some(old) = self.read(contact)? else {
            return Ok(false);
        };
        self.unindex(contact, &old)?;
        self.profiles.remove(contact.as_bytes())?;
        Ok(true)
    }
}

/// A list cursor: the hex of the last number served.
fn cursor_of(contact: &[u8]) -> String {
    crate::pdu::hex::encode(contact)
}

fn contact_of_cursor(cursor: &str) -> Result<Vec<u8>> {
    let bytes = crate::pdu::hex::decode(cursor).map_err(|_| StoreError::InvalidCursor)?;
    if bytes.is_empty() || std::str::from_utf8(&bytes).is_err() {
        return Err(StoreError::InvalidCursor);
    }
    Ok(bytes)
}

/// Whether a search entry (or the number) matches `q` (already lowercased).
fn matches_q(contact: &[u8], entry: &[u8], q: &str, q_digits: &str) -> bool {
    let text = String::from_utf8_lossy(entry);
    let (name, external_id) = text.split_once('\0').unwrap_or((&text, ""));
    name.contains(q)
        || external_id.contains(q)
        || (!q_digits.is_empty() && String::from_utf8_lossy(contact).contains(q_digits))
}

impl Store {
    fn with_profile_tx<T>(
        &self,
        f: impl Fn(&ProfileTx<'_>) -> std::result::Result<T, TxError>,
    ) -> Result<T> {
        let i = &self.inner;
        let c = &i.contact_index;
        (&i.profiles, &c.tags, &c.external_ids, &c.search)
            .transaction(|(profiles, tags, external_ids, search)| {
                f(&ProfileTx {
                    profiles,
                    tags,
                    external_ids,
                    search,
                })
            })
            .map_err(unwrap_tx)
    }

    /// A contact's profile (empty when it has none).
    pub fn profile(&self, contact: &str) -> Result<ContactProfile> {
        match self.inner.profiles.get(contact.as_bytes())? {
            Some(raw) => from_json(contact.as_bytes(), &raw),
            None => Ok(ContactProfile::default()),
        }
    }

    /// Replace `contact`'s profile with `profile` (normalized, then checked:
    /// a refusal writes nothing), with its index entries, durably.
    pub async fn set_profile(
        &self,
        contact: &str,
        profile: &ContactProfile,
    ) -> Result<ProfileWrite> {
        let outcome = self.with_profile_tx(|tx| tx.write(contact, profile.clone()))?;
        if !matches!(outcome, ProfileWrite::Refused(_)) {
            self.sync().await?;
        }
        Ok(outcome)
    }

    /// Apply import rows, `(contact, columns)`, in order, one transaction
    /// per [`IMPORT_BATCH`] rows, each durable before the next; returns
    /// what each row did (a refused row writes nothing, the others stay).
    /// Consent is not touched.
    pub async fn import_profiles(
        &self,
        rows: Vec<(String, ProfileUpdate)>,
    ) -> Result<Vec<ProfileWrite>> {
        let mut outcomes = Vec::with_capacity(rows.len());
        let mut rows = rows.into_iter();
        loop {
            let batch: Vec<(String, ProfileUpdate)> = rows.by_ref().take(IMPORT_BATCH).collect();
            if batch.is_empty() {
                break;
            }
            let done = self
                .blocking(move |store| {
                    store.with_profile_tx(|tx| {
                        let mut done = Vec::with_capacity(batch.len());
                        for (contact, update) in &batch {
                            let old = tx.read(contact)?.unwrap_or_default();
                            done.push(tx.write(contact, update.apply(old))?);
                        }
                        Ok(done)
                    })
                })
                .await?;
            self.sync().await?;
            outcomes.extend(done);
        }
        Ok(outcomes)
    }

    /// Remove `contact`'s profile and its index entries (erasure); not
    /// waited for: the caller syncs.
    pub(crate) fn remove_profile(&self, contact: &str) -> Result<bool> {
        self.with_profile_tx(|tx| tx.remove(contact))
    }

    /// The contact whose external id is `external_id`, with its profile.
    pub fn contact_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<(String, ContactProfile)>> {
        let index = &self.inner.contact_index;
        let Some(contact) = index.external_ids.get(external_id.as_bytes())? else {
            return Ok(None);
        };
        let contact = String::from_utf8_lossy(&contact).into_owned();
        let profile = self.profile(&contact)?;
        Ok(Some((contact, profile)))
    }

    /// Contacts with `tag`, in number order, after `cursor` (a previous
    /// answer's), at most `limit`; and the cursor of the next page (None on
    /// the last). For campaigns sent to a tag.
    pub fn contacts_with_tag(
        &self,
        tag: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<NumberedProfile>, Option<String>)> {
        let query = ContactQuery {
            tag: Some(tag.to_string()),
            q: None,
        };
        let page = self.contacts(&query, cursor, limit)?;
        Ok((page.items, page.next_cursor))
    }

    /// Contacts with a profile matching `query`, in number order, after
    /// `cursor`. With `q`, at most [`LIST_SCAN_BUDGET`] contacts are looked
    /// at per page: a page can be short and still have a cursor.
    pub fn contacts(
        &self,
        query: &ContactQuery,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<(String, ContactProfile)>> {
        let after = cursor.map(contact_of_cursor).transpose()?;
        let index = &self.inner.contact_index;
        // The candidates, in number order: a tag's entries, else every
        // contact with a profile (the search tree has one entry each).
        // (contact, its search entry when the scan already read it).
        type Candidate = Result<(Vec<u8>, Option<sled::IVec>)>;
        let candidates: Box<dyn Iterator<Item = Candidate>> = match &query.tag {
            Some(tag) => {
                let prefix = tag_key(tag, "");
                let start = match &after {
                    Some(a) => {
                        let mut key = prefix.clone();
                        key.extend_from_slice(a);
                        Bound::Excluded(key)
                    }
                    None => Bound::Included(prefix.clone()),
                };
                let skip = prefix.len();
                Box::new(
                    index
                        .tags
                        .range::<Vec<u8>, _>((start, Bound::Unbounded))
                        .keys()
                        .take_while(move |k| k.as_ref().map_or(true, |k| k.starts_with(&prefix)))
                        .map(move |k| Ok((k?[skip..].to_vec(), None))),
                )
            }
            None => {
                let start = match &after {
                    Some(a) => Bound::Excluded(a.clone()),
                    None => Bound::Unbounded,
                };
                Box::new(
                    index
                        .search
                        .range::<Vec<u8>, _>((start, Bound::Unbounded))
                        .map(|e| {
                            let (k, v) = e?;
                            Ok((k.to_vec(), Some(v)))
                        }),
                )
            }
        };
        let q = query.q.as_deref().map(str::to_lowercase);
        let q_digits: String = q
            .as_deref()
            .unwrap_or("")
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let mut items: Vec<(String, ContactProfile)> = Vec::with_capacity(limit.min(500));
        let mut examined = 0usize;
        let mut last_examined: Option<Vec<u8>> = None;
        for candidate in candidates {
            let (contact, entry) = candidate?;
            if let Some(q) = &q {
                if examined == LIST_SCAN_BUDGET {
                    return Ok(Page {
                        items,
                        next_cursor: last_examined.as_deref().map(cursor_of),
                    });
                }
                examined += 1;
                last_examined = Some(contact.clone());
                let entry = match entry {
                    Some(entry) => entry,
                    None => index.search.get(&contact)?.unwrap_or_default(),
                };
                if !matches_q(&contact, &entry, q, &q_digits) {
                    continue;
                }
            }
            if items.len() == limit {
                let next = items.last().map(|(c, _)| cursor_of(c.as_bytes()));
                return Ok(Page {
                    items,
                    next_cursor: next,
                });
            }
            let number = String::from_utf8_lossy(&contact).into_owned();
            let profile = self.profile(&number)?;
            items.push((number, profile));
        }
        Ok(Page {
            items,
            next_cursor: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::TempStore;

    fn profile(name: &str, external_id: Option<&str>, tags: &[&str]) -> ContactProfile {
        ContactProfile {
            name: Some(name.into()),
            external_id: external_id.map(str::to_string),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..ContactProfile::default()
        }
    }

    fn numbers(page: &Page<(String, ContactProfile)>) -> Vec<&str> {
        page.items.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[tokio::test]
    async fn indexes_follow_every_write() {
        let t = TempStore::new();
        let s = &t.store;
        let a = "+15550001001";
        let written = s
            .set_profile(a, &profile("Ana Ruiz", Some("crm-1"), &["vip", "dental"]))
            .await
            .unwrap();
        assert_eq!(written, ProfileWrite::Created);
        assert_eq!(
            s.contact_by_external_id("crm-1").unwrap().unwrap().0,
            a.to_string()
        );
        let (vip, _) = s.contacts_with_tag("vip", None, 10).unwrap();
        assert_eq!(vip.len(), 1);
        // Replaced: the old tag and id leave the indexes.
        let written = s
            .set_profile(a, &profile("Ana R.", Some("crm-9"), &["dental"]))
            .await
            .unwrap();
        assert_eq!(written, ProfileWrite::Updated);
        assert!(s.contacts_with_tag("vip", None, 10).unwrap().0.is_empty());
        assert!(s.contact_by_external_id("crm-1").unwrap().is_none());
        assert_eq!(
            s.contact_by_external_id("crm-9").unwrap().unwrap().1.name,
            Some("Ana R.".into())
        );
        // Another contact cannot take it; the refusal writes nothing.
        let b = "+15550001002";
        let refused = s
            .set_profile(b, &profile("Bo", Some("crm-9"), &["vip"]))
            .await
            .unwrap();
        assert!(
            matches!(&refused, ProfileWrite::Refused(r) if r.code == "external_id_taken"),
            "{refused:?}"
        );
        assert_eq!(s.profile(b).unwrap(), ContactProfile::default());
        assert!(s.contacts_with_tag("vip", None, 10).unwrap().0.is_empty());
        // Removal clears every index.
        assert!(s.remove_profile(a).unwrap());
        assert!(s.contact_by_external_id("crm-9").unwrap().is_none());
        assert!(s
            .contacts_with_tag("dental", None, 10)
            .unwrap()
            .0
            .is_empty());
        assert!(s
            .contacts(&ContactQuery::default(), None, 10)
            .unwrap()
            .items
            .is_empty());
        // The freed id can be taken now.
        assert_eq!(
            s.set_profile(b, &profile("Bo", Some("crm-9"), &[]))
                .await
                .unwrap(),
            ProfileWrite::Created
        );
    }

    #[test]
    fn profiles_older_than_the_indexes_are_indexed_at_open() {
        let mut t = TempStore::new();
        // A profile as the store wrote it before the indexes: a zone only.
        let old = serde_json::to_vec(&ContactProfile {
            time_zone: Some("Asia/Tokyo".into()),
            ..ContactProfile::default()
        })
        .unwrap();
        t.store.inner.profiles.insert("+15550001201", old).unwrap();
        assert!(t
            .store
            .contacts(&ContactQuery::default(), None, 10)
            .unwrap()
            .items
            .is_empty());
        t.restart();
        let page = t
            .store
            .contacts(&ContactQuery::default(), None, 10)
            .unwrap();
        assert_eq!(numbers(&page), ["+15550001201"]);
        assert_eq!(page.items[0].1.time_zone.as_deref(), Some("Asia/Tokyo"));
    }

    #[test]
    fn a_profile_fills_templates() {
        let p = ContactProfile {
            fields: [("plan".to_string(), "gold".to_string())].into(),
            ..profile("Ana", Some("crm-1"), &["vip", "b"])
        };
        let text = crate::conversation::template::render(
            "Hi {{name}} ({{number}}, {{external_id}}): your {{plan}} plan, {{tags}}",
            |key| p.value("+15550001301", key),
        );
        assert_eq!(
            text.as_deref(),
            Ok("Hi Ana (+15550001301, crm-1): your gold plan, vip, b")
        );
        let missing = crate::conversation::template::render("{{city}} {{owner_team}}", |key| {
            p.value("+15550001301", key)
        });
        assert!(missing.is_err(), "{missing:?}");
    }

    #[tokio::test]
    async fn erasure_takes_the_profile_out_of_every_index() {
        let t = TempStore::new();
        let s = &t.store;
        let a = "+15550001101";
        let written = s
            .set_profile(a, &profile("Ana", Some("crm-7"), &["vip"]))
            .await
            .unwrap();
        assert_eq!(written, ProfileWrite::Created);
        s.erase_contact(a).await.unwrap();
        assert_eq!(s.profile(a).unwrap(), ContactProfile::default());
        assert!(s.contact_by_external_id("crm-7").unwrap().is_none());
        assert!(s.contacts_with_tag("vip", None, 10).unwrap().0.is_empty());
        let q = ContactQuery {
            tag: None,
            q: Some("ana".into()),
        };
        assert!(s.contacts(&q, None, 10).unwrap().items.is_empty());
        assert!(s
            .contacts(&ContactQuery::default(), None, 10)
            .unwrap()
            .items
            .is_empty());
    }

    #[tokio::test]
    async fn tag_pages_go_in_number_order_and_q_matches_substrings() {
        let t = TempStore::new();
        let s = &t.store;
        for n in 0..7 {
            let tags: &[&str] = if n % 2 == 0 { &["even"] } else { &["odd"] };
            let name = format!("Person {n}");
            let written = s
                .set_profile(
                    &format!("+1555000200{n}"),
                    &profile(&name, Some(&format!("EXT-{n}")), tags),
                )
                .await
                .unwrap();
            assert_eq!(written, ProfileWrite::Created);
        }
        // A tag that is a prefix of another does not leak into it.
        let written = s
            .set_profile("+15550009999", &profile("Eve", None, &["evening"]))
            .await
            .unwrap();
        assert_eq!(written, ProfileWrite::Created);
        let (first, cursor) = s.contacts_with_tag("even", None, 2).unwrap();
        let first: Vec<_> = first.into_iter().map(|(n, _)| n).collect();
        assert_eq!(first, ["+15550002000", "+15550002002"]);
        let (second, cursor) = s.contacts_with_tag("even", cursor.as_deref(), 2).unwrap();
        let second: Vec<_> = second.into_iter().map(|(n, _)| n).collect();
        assert_eq!(second, ["+15550002004", "+15550002006"]);
        assert_eq!(cursor, None, "no eighth even contact");

        let q = |text: &str| ContactQuery {
            tag: None,
            q: Some(text.into()),
        };
        let page = s.contacts(&q("person 3"), None, 10).unwrap();
        assert_eq!(numbers(&page), ["+15550002003"]);
        let page = s.contacts(&q("ext-"), None, 10).unwrap();
        assert_eq!(page.items.len(), 7, "external ids, case-insensitive");
        let page = s.contacts(&q("(555) 000-2005"), None, 10).unwrap();
        assert_eq!(numbers(&page), ["+15550002005"]);
        let both = ContactQuery {
            tag: Some("odd".into()),
            q: Some("PERSON".into()),
        };
        let page = s.contacts(&both, None, 2).unwrap();
        assert_eq!(numbers(&page), ["+15550002001", "+15550002003"]);
        let page = s.contacts(&both, page.next_cursor.as_deref(), 2).unwrap();
        assert_eq!(numbers(&page), ["+15550002005"]);
        assert!(page.next_cursor.is_none());
        assert!(matches!(
            s.contacts(&q("x"), Some("zz"), 1),
            Err(StoreError::InvalidCursor)
        ));
    }

    #[tokio::test]
    async fn import_batches_keep_good_rows_and_see_their_own_ids() {
        let t = TempStore::new();
        let s = &t.store;
        let written = s
            .set_profile(
                "+15550003000",
                &ContactProfile {
                    time_zone: Some("Asia/Tokyo".into()),
                    fields: [("plan".to_string(), "gold".to_string())].into(),
                    ..profile("Old", Some("A-0"), &["x"])
                },
            )
            .await
            .unwrap();
        assert_eq!(written, ProfileWrite::Created);
        let row = |name: &str, id: &str| ProfileUpdate {
            name: Some(Some(name.into())),
            external_id: Some(Some(id.into())),
            ..ProfileUpdate::default()
        };
        let mut rows: Vec<(String, ProfileUpdate)> = (0..IMPORT_BATCH + 5)
            .map(|n| (format!("+1555100{n:04}"), row("N", &format!("I-{n}"))))
            .collect();
        // The same id twice in one file: the second row is refused even in
        // the same transaction.
        rows.push(("+15550003001".into(), row("Dup", "I-3")));
        // An existing contact: the file's columns replace, the rest stays.
        rows.push(("+15550003000".into(), row("New", "A-0")));
        let outcomes = s.import_profiles(rows).await.unwrap();
        assert_eq!(outcomes.len(), IMPORT_BATCH + 7);
        assert!(outcomes[..IMPORT_BATCH + 5]
            .iter()
            .all(|o| *o == ProfileWrite::Created));
        assert!(
            matches!(&outcomes[IMPORT_BATCH + 5], ProfileWrite::Refused(r) if r.code == "external_id_taken")
        );
        assert_eq!(outcomes[IMPORT_BATCH + 6], ProfileWrite::Updated);
        let kept = s.profile("+15550003000").unwrap();
        assert_eq!(kept.name.as_deref(), Some("New"));
        assert_eq!(kept.time_zone.as_deref(), Some("Asia/Tokyo"));
        assert_eq!(kept.tags, ["x"]);
        assert_eq!(kept.fields["plan"], "gold");
        assert_eq!(
            s.contact_by_external_id(&format!("I-{}", IMPORT_BATCH + 4))
                .unwrap()
                .map(|(n, _)| n),
            Some(format!("+1555100{:04}", IMPORT_BATCH + 4))
        );
    }

    #[test]
    fn checks_name_what_is_wrong() {
        let ok = profile("Ana", Some("crm-1"), &["vip"]);
        assert_eq!(ok.check(), Ok(()));
        let code = |p: ContactProfile| p.check().unwrap_err().code;
        assert_eq!(code(profile(&"n".repeat(201), None, &[])), "invalid_name");
        assert_eq!(code(profile("a\u{7}b", None, &[])), "invalid_name");
        assert_eq!(code(profile("A", None, &["a;b"])), "invalid_tags");
        assert_eq!(code(profile("A", None, &["a\nb"])), "invalid_tags");
        assert_eq!(code(profile("A", None, &[" "])), "invalid_tags");
        assert_eq!(code(profile("A", None, &[&"t".repeat(65)])), "invalid_tags");
        let many: Vec<String> = (0..51).map(|n| format!("t{n}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(code(profile("A", None, &many)), "invalid_tags");
        let with_field = |k: &str, v: &str| ContactProfile {
            fields: [(k.to_string(), v.to_string())].into(),
            ..ContactProfile::default()
        };
        assert_eq!(with_field("plan.tier-2_b", "gold").check(), Ok(()));
        for key in [
            "",
            "has space",
            "{x}",
            "ñ",
            "name",
            "number",
            &"k".repeat(65),
        ] {
            assert_eq!(code(with_field(key, "v")), "invalid_fields", "{key:?}");
        }
        assert_eq!(code(with_field("k", &"v".repeat(1001))), "invalid_fields");
        assert_eq!(with_field("k", &"v".repeat(1000)).check(), Ok(()));
        let fields: std::collections::BTreeMap<String, String> =
            (0..101).map(|n| (format!("k{n}"), "v".into())).collect();
        let p = ContactProfile {
            fields,
            ..ContactProfile::default()
        };
        assert_eq!(code(p), "invalid_fields");
        let p = ContactProfile {
            time_zone: Some("Mars/Olympus".into()),
            ..ContactProfile::default()
        };
        assert_eq!(code(p), "invalid_time_zone");
        // Normalizing trims, clears blanks and drops repeated tags.
        let p = ContactProfile {
            name: Some("  Ana ".into()),
            external_id: Some(" ".into()),
            tags: vec![" vip".into(), "vip".into(), "".into(), "b".into()],
            ..ContactProfile::default()
        }
        .normalized();
        assert_eq!(p.name.as_deref(), Some("Ana"));
        assert_eq!(p.external_id, None);
        assert_eq!(p.tags, ["vip", "b"]);
    }
}
