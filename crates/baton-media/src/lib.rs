//! Images people attach to a chat. Their kind is read from the bytes (a name or a
//! declared type is never trusted), their size from the header, and an image that would
//! decode to more pixels than allowed (a decompression bomb) is refused before it is
//! decoded. Making the thumbnail decodes the whole image, so a truncated or corrupt one
//! is refused at upload rather than at the model.
#![forbid(unsafe_code)]

use std::io::Cursor;

use image::{ImageFormat, ImageReader};

/// The image kinds Baton accepts (the ones the model providers take).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Jpeg,
    Gif,
    Webp,
}

impl ImageKind {
    pub fn mime(&self) -> &'static str {
        match self {
            ImageKind::Png => "image/png",
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Gif => "image/gif",
            ImageKind::Webp => "image/webp",
        }
    }

    fn format(&self) -> ImageFormat {
        match self {
            ImageKind::Png => ImageFormat::Png,
            ImageKind::Jpeg => ImageFormat::Jpeg,
            ImageKind::Gif => ImageFormat::Gif,
            ImageKind::Webp => ImageFormat::WebP,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MediaError {
    #[error("not an image: send PNG, JPEG, GIF or WebP")]
    NotAnImage,
    #[error("{0} images are not accepted: send PNG, JPEG, GIF or WebP")]
    Unsupported(String),
    #[error("the image is {width}×{height} pixels, more than the {limit} allowed")]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    #[error("the image cannot be read: {0}")]
    Broken(String),
}

/// What an accepted image is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspected {
    pub kind: ImageKind,
    pub width: u32,
    pub height: u32,
}

/// The kind of image `bytes` hold, from their first bytes.
pub fn sniff(bytes: &[u8]) -> Result<ImageKind, MediaError> {
    match image::guess_format(bytes) {
        Ok(ImageFormat::Png) => Ok(ImageKind::Png),
        Ok(ImageFormat::Jpeg) => Ok(ImageKind::Jpeg),
        Ok(ImageFormat::Gif) => Ok(ImageKind::Gif),
        Ok(ImageFormat::WebP) => Ok(ImageKind::Webp),
        Ok(other) => Err(MediaError::Unsupported(format!("{other:?}").to_uppercase())),
        Err(_) => Err(MediaError::NotAnImage),
    }
}

fn reader(bytes: &[u8], kind: ImageKind, max_pixels: u64) -> ImageReader<Cursor<&[u8]>> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), kind.format());
    let mut limits = image::Limits::default();
    // Room for the largest allowed image at 16-bit RGBA, which some PNGs decode to.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(64 << 20));
    reader.limits(limits);
    reader
}

/// Sniffs `bytes` and reads the image's size from its header, refusing images of more
/// than `max_pixels` pixels without decoding them.
pub fn inspect(bytes: &[u8], max_pixels: u64) -> Result<Inspected, MediaError> {
    let kind = sniff(bytes)?;
    let (width, height) = reader(bytes, kind, max_pixels)
        .into_dimensions()
        .map_err(|e| MediaError::Broken(e.to_string()))?;
    if width == 0 || height == 0 {
        return Err(MediaError::Broken("it has no pixels".into()));
    }
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(MediaError::TooManyPixels {
            width,
            height,
            limit: max_pixels,
        });
    }
    Ok(Inspected {
        kind,
        width,
        height,
    })
}

/// A PNG of the image scaled to fit `edge`×`edge` (never enlarged). Decodes the whole
/// image: an image that cannot be decoded to its end is `Broken`.
pub fn thumbnail(bytes: &[u8], image: &Inspected, edge: u32) -> Result<Vec<u8>, MediaError> {
    let max_pixels = u64::from(image.width) * u64::from(image.height);
    let decoded = reader(bytes, image.kind, max_pixels)
        .decode()
        .map_err(|e| MediaError::Broken(e.to_string()))?;
    let small = if image.width > edge || image.height > edge {
        decoded.thumbnail(edge, edge)
    } else {
        decoded
    };
    let mut out = Cursor::new(Vec::new());
    small
        .to_rgba8()
        .write_to(&mut out, ImageFormat::Png)
        .map_err(|e| MediaError::Broken(e.to_string()))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 128]));
        let mut out = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut out, format)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn kinds_come_from_the_bytes() {
        for (format, kind) in [
            (ImageFormat::Png, ImageKind::Png),
            (ImageFormat::Jpeg, ImageKind::Jpeg),
            (ImageFormat::Gif, ImageKind::Gif),
            (ImageFormat::WebP, ImageKind::Webp),
        ] {
            let bytes = encoded(40, 30, format);
            let got = inspect(&bytes, 1_000_000).unwrap();
            assert_eq!((got.kind, got.width, got.height), (kind, 40, 30));
        }
        assert_eq!(
            inspect(b"just some text, named .png", 1_000),
            Err(MediaError::NotAnImage)
        );
        assert!(matches!(
            inspect(b"BM\x3e\0\0\0\0\0\0\0\x3e\0\0\0", 1_000),
            Err(MediaError::Unsupported(f)) if f == "BMP"
        ));
    }

    #[test]
    fn bombs_are_refused_before_decoding() {
        let bytes = encoded(300, 200, ImageFormat::Png);
        let err = inspect(&bytes, 50_000).unwrap_err();
        assert_eq!(
            err,
            MediaError::TooManyPixels {
                width: 300,
                height: 200,
                limit: 50_000
            }
        );
    }

    #[test]
    fn thumbnails_fit_the_edge_and_broken_images_are_refused() {
        let bytes = encoded(600, 300, ImageFormat::Jpeg);
        let img = inspect(&bytes, 10_000_000).unwrap();
        let thumb = thumbnail(&bytes, &img, 256).unwrap();
        let t = inspect(&thumb, 10_000_000).unwrap();
        assert_eq!((t.kind, t.width, t.height), (ImageKind::Png, 256, 128));

        let small = encoded(20, 10, ImageFormat::Png);
        let img = inspect(&small, 10_000_000).unwrap();
        let t = inspect(&thumbnail(&small, &img, 256).unwrap(), 1_000).unwrap();
        assert_eq!((t.width, t.height), (20, 10));

        let png = encoded(200, 200, ImageFormat::Png);
        let cut = &png[..png.len() / 2];
        let img = inspect(cut, 10_000_000).expect("the header is whole");
        assert!(matches!(
            thumbnail(cut, &img, 64),
            Err(MediaError::Broken(_))
        ));
    }
}
