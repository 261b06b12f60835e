//! Full-text search over everything domains choose to index, in one tantivy index beside the
//! database (`DATA_DIR/search`).
//!
//! The index is derived data: domains register a [`Source`] that lists their documents from the
//! store, and the index can always be rebuilt from those (`bulwark search reindex`). It is rebuilt
//! automatically when its layout version changes or when the process did not shut down cleanly
//! (a crash between a store commit and an index commit could otherwise leave it stale).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, RegexQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, Value, STORED, STRING, TEXT};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::store::{Store, StoreError};

/// Bump when the schema or tokenization changes: the index is then rebuilt on open.
const LAYOUT_VERSION: &str = "2";
const CLEAN: &str = "clean";
const DIRTY: &str = "dirty";

/// A document as a domain hands it to the index.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    /// Kind of thing, e.g. `cluster`; also a filter.
    pub kind: &'static str,
    /// Id within the kind.
    pub id: String,
    /// Shown as the hit's title; searched.
    pub title: String,
    /// Searched, not shown.
    pub body: String,
    /// Where the UI links the hit.
    pub url: String,
    /// What it belongs to, e.g. `image:12`: [`Search::replace_group`] swaps a group's documents.
    pub group: String,
}

/// One search result.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hit {
    /// Kind of thing.
    pub kind: String,
    /// Id within the kind.
    pub id: String,
    /// Title.
    pub title: String,
    /// Link.
    pub url: String,
    /// Relevance.
    pub score: f32,
}

/// Lists a source's documents into the callback.
pub type DocumentsFn = fn(&Store, &mut dyn FnMut(Doc)) -> Result<(), StoreError>;

/// A domain's contribution to the index: every document of one kind, read from the store.
#[derive(Clone)]
pub struct Source {
    /// The kind these documents have.
    pub kind: &'static str,
    /// Lists them.
    /// Hands every document to the callback, one at a time (so a rebuild never holds them all).
    pub documents: DocumentsFn,
}

/// Search failures.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("search index directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading documents for the index: {0}")]
    Store(#[from] StoreError),
    #[error("search index is busy")]
    Poisoned,
}

#[derive(Clone, Copy)]
struct Fields {
    key: Field,
    group: Field,
    kind: Field,
    id: Field,
    title: Field,
    body: Field,
    url: Field,
}

struct Inner {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    sources: Vec<Source>,
    store: Store,
    needs_rebuild: std::sync::atomic::AtomicBool,
}

/// Handle to the index; cheap to clone. Methods block: call them from the blocking pool.
#[derive(Clone)]
pub struct Search {
    inner: Arc<Inner>,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        key: b.add_text_field("key", STRING),
        group: b.add_text_field("group", STRING),
        kind: b.add_text_field("kind", STRING | STORED),
        id: b.add_text_field("id", STRING | STORED),
        title: b.add_text_field("title", TEXT | STORED),
        body: b.add_text_field("body", TEXT),
        url: b.add_text_field("url", STORED),
    };
    (b.build(), fields)
}

impl Search {
    /// Opens (or creates) the index in `dir`. If it is missing, of another layout, unreadable, or
    /// was not closed cleanly, it is recreated and [`Search::needs_rebuild`] says so.
    pub fn open(dir: &Path, store: Store, sources: Vec<Source>) -> Result<Search, SearchError> {
        let io = |source| SearchError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let version_file = dir.join("LAYOUT");
        let (schema, fields) = schema();
        let current = std::fs::read_to_string(&version_file).ok();
        let mut needs_rebuild = current.as_deref() != Some(LAYOUT_VERSION);
        let mut index = None;
        if !needs_rebuild {
            match Index::open_in_dir(dir) {
                Ok(i) if i.schema() == schema => {
                    let clean =
                        i.load_metas().ok().and_then(|m| m.payload).as_deref() == Some(CLEAN);
                    needs_rebuild = !clean;
                    index = Some(i);
                }
                _ => needs_rebuild = true,
            }
        }
        let index = match index {
            Some(i) => i,
            None => {
                if dir.exists() {
                    std::fs::remove_dir_all(dir).map_err(io)?;
                }
                std::fs::create_dir_all(dir).map_err(io)?;
                let i = Index::create_in_dir(dir, schema)?;
                std::fs::write(&version_file, LAYOUT_VERSION).map_err(io)?;
                i
            }
        };
        // One indexing thread and a small arena: admin-scale writes, small idle memory.
        let writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let search = Search {
            inner: Arc::new(Inner {
                index,
                reader,
                writer: Mutex::new(writer),
                fields,
                sources,
                store,
                needs_rebuild: needs_rebuild.into(),
            }),
        };
        // Until a clean close marks it otherwise, an open index counts as possibly stale.
        search.commit(DIRTY)?;
        Ok(search)
    }

    /// Whether the index must be rebuilt from the store before it is complete.
    pub fn needs_rebuild(&self) -> bool {
        self.inner
            .needs_rebuild
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn commit(&self, payload: &str) -> Result<(), SearchError> {
        let mut w = self
            .inner
            .writer
            .lock()
            .map_err(|_| SearchError::Poisoned)?;
        let mut prepared = w.prepare_commit()?;
        prepared.set_payload(payload);
        prepared.commit()?;
        drop(w);
        self.inner.reader.reload()?;
        Ok(())
    }

    /// Replaces the whole index with the documents of every source; returns how many.
    pub fn rebuild(&self) -> Result<usize, SearchError> {
        let mut n = 0;
        {
            let w = self
                .inner
                .writer
                .lock()
                .map_err(|_| SearchError::Poisoned)?;
            w.delete_all_documents()?;
            let mut failed = None;
            for s in &self.inner.sources {
                (s.documents)(&self.inner.store, &mut |d| {
                    if failed.is_none() {
                        match w.add_document(self.to_tantivy(&d)) {
                            Ok(_) => n += 1,
                            Err(e) => failed = Some(e),
                        }
                    }
                })?;
            }
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
        self.commit(DIRTY)?;
        self.inner
            .needs_rebuild
            .store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }

    /// Adds or replaces one document and makes it searchable.
    pub fn upsert(&self, doc: &Doc) -> Result<(), SearchError> {
        {
            let w = self
                .inner
                .writer
                .lock()
                .map_err(|_| SearchError::Poisoned)?;
            w.delete_term(Term::from_field_text(self.inner.fields.key, &key(doc)));
            w.add_document(self.to_tantivy(doc))?;
        }
        self.commit(DIRTY)
    }

    /// Removes every document of `group` (e.g. a deleted cluster's).
    pub fn delete_group(&self, group: &str) -> Result<(), SearchError> {
        self.replace_group(group, &[])
    }

    /// Replaces every document of `group` with `docs`, in one commit.
    pub fn replace_group(&self, group: &str, docs: &[Doc]) -> Result<(), SearchError> {
        {
            let w = self
                .inner
                .writer
                .lock()
                .map_err(|_| SearchError::Poisoned)?;
            w.delete_term(Term::from_field_text(self.inner.fields.group, group));
            for d in docs {
                w.add_document(self.to_tantivy(d))?;
            }
        }
        self.commit(DIRTY)
    }

    /// Marks the index consistent with the store (call at graceful shutdown).
    pub fn close(&self) -> Result<(), SearchError> {
        if self.needs_rebuild() {
            return Ok(());
        }
        self.commit(CLEAN)
    }

    /// Number of documents.
    pub fn len(&self) -> u64 {
        self.inner.reader.searcher().num_docs()
    }

    /// Whether the index holds no documents.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Searches titles and bodies. Every word of `q` must match the start of a word in the
    /// document (so `CVE-2024-12` finds `CVE-2024-1234`); `kind` restricts to one kind.
    pub fn query(
        &self,
        q: &str,
        kind: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Hit>, SearchError> {
        let f = self.inner.fields;
        let words: Vec<String> = q
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .take(16)
            .map(|w| w.to_lowercase())
            .collect();
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for w in &words {
            // Words are alphanumeric only, so they need no regex escaping.
            let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for field in [f.title, f.body] {
                any.push((
                    Occur::Should,
                    Box::new(TermQuery::new(
                        Term::from_field_text(field, w),
                        IndexRecordOption::WithFreqs,
                    )),
                ));
                any.push((
                    Occur::Should,
                    Box::new(RegexQuery::from_pattern(&format!("{w}.*"), field)?),
                ));
            }
            must.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        }
        if let Some(k) = kind {
            must.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.kind, k),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        let query = BooleanQuery::new(must);
        let searcher = self.inner.reader.searcher();
        let top = searcher.search(
            &query,
            &TopDocs::with_limit(limit.clamp(1, 500)).order_by_score(),
        )?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let d: TantivyDocument = searcher.doc(addr)?;
            let text = |field| {
                d.get_first(field)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            hits.push(Hit {
                kind: text(f.kind),
                id: text(f.id),
                title: text(f.title),
                url: text(f.url),
                score,
            });
        }
        Ok(hits)
    }

    fn to_tantivy(&self, d: &Doc) -> TantivyDocument {
        let f = self.inner.fields;
        doc!(
            f.key => key(d),
            f.group => d.group.clone(),
            f.kind => d.kind,
            f.id => d.id.clone(),
            f.title => d.title.clone(),
            f.body => d.body.clone(),
            f.url => d.url.clone(),
        )
    }

    /// Directory of the index inside a data dir.
    pub fn dir(data_dir: &Path) -> PathBuf {
        data_dir.join("search")
    }

    /// The underlying index (for diagnostics).
    pub fn index(&self) -> &Index {
        &self.inner.index
    }
}

fn key(d: &Doc) -> String {
    format!("{}|{}|{}", d.kind, d.group, d.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Table;

    const NAMES: Table<u64, String> = Table::new("search_test_names");

    fn docs(store: &Store, emit: &mut dyn FnMut(Doc)) -> Result<(), StoreError> {
        for (id, name) in store.read(|r| r.all(&NAMES))? {
            emit(Doc {
                kind: "thing",
                id: id.to_string(),
                title: name.clone(),
                body: String::new(),
                url: format!("/things/{id}"),
                group: format!("thing:{id}"),
            });
        }
        Ok(())
    }

    #[test]
    fn rebuilds_after_unclean_close_and_finds_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("data"), &[]).unwrap();
        store
            .write(|w| w.put(&NAMES, &1, &"CVE-2024-1234 in openssl".to_string()))
            .unwrap();
        let sources = vec![Source {
            kind: "thing",
            documents: docs,
        }];
        let idx = dir.path().join("search");
        let s = Search::open(&idx, store.clone(), sources.clone()).unwrap();
        assert!(s.needs_rebuild(), "a new index is empty and must be built");
        assert_eq!(s.rebuild().unwrap(), 1);
        assert_eq!(s.query("cve-2024-12", None, 10).unwrap().len(), 1);
        assert_eq!(
            s.query("openss", Some("thing"), 10).unwrap()[0].url,
            "/things/1"
        );
        assert!(s.query("openssl", Some("other"), 10).unwrap().is_empty());
        assert!(s.query("libxml", None, 10).unwrap().is_empty());
        s.close().unwrap();
        drop(s);
        let s = Search::open(&idx, store.clone(), sources.clone()).unwrap();
        assert!(!s.needs_rebuild(), "a cleanly closed index is reused");
        assert_eq!(s.len(), 1);
        drop(s); // no close(): like a crash
        let s = Search::open(&idx, store, sources).unwrap();
        assert!(s.needs_rebuild(), "an index not closed cleanly is rebuilt");
    }
}
