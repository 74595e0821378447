//! Images people attach: stored once per SHA-256 with a thumbnail, named by the
//! questions they go with, and put into each request a session makes — as image parts
//! for a model that sees, or as a description from `vision_model` for one that does not.
use std::collections::HashMap;
use std::time::Duration;

use baton_core::{time, Attachment, AttachmentId, NewAttachment, TraceFinish, TraceKind};
use baton_core::{Session, TraceOutcome};
use baton_llm::{ChatMessage, ChatRequest, ContentPart, ImageRef, Usage};
use baton_media::MediaError;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::error::AgentError;
use crate::models::ModelEntry;
use crate::runtime::AgentRuntime;
use crate::shared::Inner;
use crate::tracing_calls::{new_trace, Tracer};

/// How big an attachment may be, and how long one no message names is kept.
#[derive(Debug, Clone)]
pub struct AttachmentLimits {
    /// Largest upload in bytes.
    pub max_bytes: u64,
    /// Largest image in pixels (width × height): larger ones are decompression bombs.
    pub max_pixels: u64,
    /// An attachment no message names is removed this long after its last upload.
    pub orphan_ttl: Duration,
    /// Most images one message may carry.
    pub per_message: usize,
}

impl Default for AttachmentLimits {
    fn default() -> Self {
        Self {
            max_bytes: 20 << 20,
            max_pixels: 50_000_000,
            orphan_ttl: Duration::from_secs(24 * 3600),
            per_message: 20,
        }
    }
}

/// Thumbnails fit this many pixels on a side.
const THUMBNAIL_EDGE: u32 = 256;

const DESCRIBE_SYSTEM: &str = "You describe images for a model that cannot see them. \
Describe everything in the image another model would need to answer questions about it: \
all visible text verbatim, layout, objects, people, charts with their values, colours. \
Answer with the description only.";

const DESCRIBE_PROMPT: &str = "Describe this image.";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a model cannot be given images, with the two ways out.
pub(crate) fn text_only(model: &str) -> String {
    format!(
        "model '{model}' does not accept images: choose a model configured with vision = true, \
         or set [agents] vision_model to one that describes images for text-only models"
    )
}

impl AgentRuntime {
    pub fn attachment_limits(&self) -> &AttachmentLimits {
        &self.inner.config.attachments
    }

    /// Checks and stores an uploaded image (kind from its bytes, size from its header,
    /// bombs refused, decoded once for the thumbnail). The same bytes uploaded again
    /// answer the attachment stored before.
    pub async fn upload_attachment(&self, bytes: Vec<u8>) -> Result<Attachment, AgentError> {
        let limits = self.inner.config.attachments.clone();
        if bytes.len() as u64 > limits.max_bytes {
            return Err(AgentError::TooLarge(format!(
                "the file is {} bytes; attachments may be at most {} bytes",
                bytes.len(),
                limits.max_bytes
            )));
        }
        let new = tokio::task::spawn_blocking(move || -> Result<NewAttachment, MediaError> {
            let image = baton_media::inspect(&bytes, limits.max_pixels)?;
            let thumbnail = baton_media::thumbnail(&bytes, &image, THUMBNAIL_EDGE)?;
            Ok(NewAttachment {
                attachment: Attachment {
                    id: AttachmentId::new(),
                    mime: image.kind.mime().to_string(),
                    size: bytes.len() as i64,
                    sha256: hex(&Sha256::digest(&bytes)),
                    width: i64::from(image.width),
                    height: i64::from(image.height),
                    created_at: time::now(),
                },
                bytes,
                thumbnail,
            })
        })
        .await
        .map_err(|e| AgentError::BadInput(format!("reading the image failed: {e}")))??;
        Ok(self.inner.store.put_attachment(&new).await?)
    }

    pub async fn attachment(&self, id: AttachmentId) -> Result<Attachment, AgentError> {
        self.inner
            .store
            .get_attachment(id)
            .await?
            .ok_or(AgentError::NotFound("attachment"))
    }

    /// The attachment's bytes, or its thumbnail's (a PNG).
    pub async fn attachment_bytes(
        &self,
        id: AttachmentId,
        thumbnail: bool,
    ) -> Result<Vec<u8>, AgentError> {
        self.inner
            .store
            .attachment_bytes(id, thumbnail)
            .await?
            .ok_or(AgentError::NotFound("attachment"))
    }

    /// Removes attachments no message names whose last upload is older than the limit.
    pub async fn remove_orphan_attachments(&self) -> Result<u64, AgentError> {
        let before = time::now() - self.inner.config.attachments.orphan_ttl;
        Ok(self.inner.store.delete_orphan_attachments(before).await?)
    }

    /// `remove_orphan_attachments`, at most once a minute (or once per orphan lifetime,
    /// if shorter); for the cluster's sweep.
    pub async fn sweep_orphan_attachments(&self) {
        let every = self
            .inner
            .config
            .attachments
            .orphan_ttl
            .min(Duration::from_secs(60));
        {
            let mut last = self.inner.orphans_swept.lock().expect("orphans lock");
            if last.is_some_and(|t| t.elapsed() < every) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        match self.remove_orphan_attachments().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed attachments no message names"),
            Err(e) => tracing::warn!(error = %e, "removing orphan attachments failed"),
        }
    }
}

/// The attachments a question names, looked up in order; the first unknown one is a
/// clear error.
pub(crate) async fn lookup(
    inner: &Inner,
    ids: &[AttachmentId],
) -> Result<Vec<ImageRef>, AgentError> {
    let most = inner.config.attachments.per_message;
    if ids.len() > most {
        return Err(AgentError::Attachment(format!(
            "a message may carry at most {most} attachments; this one has {}",
            ids.len()
        )));
    }
    let mut refs = Vec::with_capacity(ids.len());
    for id in ids {
        let a = inner
            .store
            .get_attachment(*id)
            .await?
            .ok_or_else(|| AgentError::Attachment(format!("attachment {id} not found")))?;
        refs.push(ImageRef {
            attachment: a.id.to_string(),
            mime: a.mime,
            sha256: a.sha256,
            width: a.width as u32,
            height: a.height as u32,
        });
    }
    Ok(refs)
}

/// Whether `model` can be given `images`: it sees them, or `vision_model` describes them.
pub(crate) fn check_vision(inner: &Inner, model: &ModelEntry) -> Result<(), String> {
    if sees(model) || inner.config.vision_model.is_some() {
        Ok(())
    } else {
        Err(text_only(&model.name))
    }
}

fn sees(model: &ModelEntry) -> bool {
    model.vision && model.client.accepts_images()
}

pub(crate) fn has_images(history: &[ChatMessage]) -> bool {
    history.iter().any(|m| match m {
        ChatMessage::User { content } => content
            .iter()
            .any(|p| matches!(p, ContentPart::ImageRef(_) | ContentPart::Image { .. })),
        _ => false,
    })
}

/// What stands for one image in a request.
enum Loaded {
    Image { mime: String, data: String },
    Described(String),
}

/// What describing images spent, for the session's totals.
#[derive(Default)]
pub(crate) struct Spent {
    pub usage: Usage,
    pub cost_usd: f64,
}

/// The request with every stored image put in: its bytes for a model that sees, a
/// description by `vision_model` (made once per image, traced, kept) otherwise.
pub(crate) async fn load_images(
    inner: &Inner,
    tracer: &Tracer,
    session: &Session,
    model: &ModelEntry,
    req: &mut ChatRequest,
    cancel: &CancellationToken,
) -> Result<Spent, String> {
    let mut spent = Spent::default();
    if !has_images(&req.messages) {
        return Ok(spent);
    }
    let describer = if sees(model) {
        None
    } else {
        let name = inner
            .config
            .vision_model
            .clone()
            .ok_or_else(|| text_only(&model.name))?;
        let entry = inner
            .models
            .get(&name)
            .ok_or_else(|| format!("[agents] vision_model '{name}' is not a configured model"))?;
        if !sees(&entry) {
            return Err(format!(
                "[agents] vision_model '{name}' does not accept images (set vision = true on it)"
            ));
        }
        Some(entry)
    };
    let mut loaded: HashMap<String, Loaded> = HashMap::new();
    let mut number = 0;
    for m in &mut req.messages {
        let ChatMessage::User { content } = m else {
            continue;
        };
        for part in content.iter_mut() {
            let ContentPart::ImageRef(r) = part else {
                continue;
            };
            number += 1;
            if !loaded.contains_key(&r.attachment) {
                let one = match &describer {
                    None => Loaded::Image {
                        mime: r.mime.clone(),
                        data: base64(&image_bytes(inner, r).await?),
                    },
                    Some(d) => Loaded::Described(
                        describe(inner, tracer, session, d, r, cancel, &mut spent).await?,
                    ),
                };
                loaded.insert(r.attachment.clone(), one);
            }
            *part = match &loaded[&r.attachment] {
                Loaded::Image { mime, data } => ContentPart::Image {
                    mime: mime.clone(),
                    data: data.clone(),
                },
                Loaded::Described(text) => ContentPart::Text {
                    text: format!("[Image {number}, described by another model: {text}]"),
                },
            };
        }
    }
    Ok(spent)
}

async fn image_bytes(inner: &Inner, r: &ImageRef) -> Result<Vec<u8>, String> {
    let id: AttachmentId = r
        .attachment
        .parse()
        .map_err(|e: baton_core::IdError| e.to_string())?;
    inner
        .store
        .attachment_bytes(id, false)
        .await
        .map_err(|e| format!("reading attachment {id} failed: {e}"))?
        .ok_or_else(|| format!("attachment {id} is no longer stored"))
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// What `describer` says the image shows: from the store when it was asked before,
/// otherwise asked now (a traced model call) and kept.
async fn describe(
    inner: &Inner,
    tracer: &Tracer,
    session: &Session,
    describer: &ModelEntry,
    r: &ImageRef,
    cancel: &CancellationToken,
    spent: &mut Spent,
) -> Result<String, String> {
    if let Ok(Some(known)) = inner
        .store
        .image_description(&r.sha256, &describer.name)
        .await
    {
        return Ok(known);
    }
    let data = base64(&image_bytes(inner, r).await?);
    let req = ChatRequest {
        model: describer.name.clone(),
        system: DESCRIBE_SYSTEM.into(),
        tools: vec![],
        messages: vec![ChatMessage::User {
            content: vec![
                ContentPart::Image {
                    mime: r.mime.clone(),
                    data,
                },
                ContentPart::Text {
                    text: DESCRIBE_PROMPT.into(),
                },
            ],
        }],
        max_tokens: 2048,
        effort: None,
    };
    let mut trace = new_trace(
        TraceKind::Llm,
        &describer.name,
        session.turn_number,
        json!({ "model": describer.name, "provider": describer.provider,
                "describe_image": { "attachment": r.attachment, "sha256": r.sha256,
                                    "mime": r.mime, "width": r.width, "height": r.height } }),
    );
    trace.session_id = Some(session.id);
    trace.chat_id = session.chat_id;
    trace.run_id = session.run_id;
    trace.meta = json!({ "purpose": "describe_image" });
    let trace = tracer.start(trace).await;
    let result = describer.client.complete(&req, &mut |_| {}, cancel).await;
    match result {
        Ok(resp) => {
            let u = resp.usage;
            let cost = describer.pricing.cost(&u);
            spent.usage.add(&u);
            spent.cost_usd += cost;
            tracer
                .finish(
                    &trace,
                    TraceFinish {
                        output: Some(json!({ "text": resp.text })),
                        tokens_used: Some(u.total() as i64),
                        input_tokens: Some(u.input_tokens as i64),
                        output_tokens: Some(u.output_tokens as i64),
                        cache_tokens: Some(u.cache_read_tokens as i64),
                        cache_write_tokens: Some(u.cache_write_tokens as i64),
                        reasoning_tokens: Some(u.reasoning_tokens as i64),
                        cost_usd: Some(cost),
                        outcome: Some(TraceOutcome::Ok),
                        ..Default::default()
                    },
                )
                .await;
            let text = resp.text.trim().to_string();
            if let Err(e) = inner
                .store
                .put_image_description(&r.sha256, &describer.name, &text)
                .await
            {
                tracing::warn!(error = %e, "keeping an image's description failed");
            }
            Ok(text)
        }
        Err(e) => {
            tracer
                .finish(
                    &trace,
                    TraceFinish {
                        error: Some(e.to_string()),
                        outcome: Some(TraceOutcome::Error),
                        ..Default::default()
                    },
                )
                .await;
            Err(format!(
                "describing image {} with '{}' failed: {e}",
                r.attachment, describer.name
            ))
        }
    }
}
