//! `multipart/form-data` request bodies, as a browser, `curl -F` or Node's
//! `FormData` (Immich's server) sends them.

/// One part of a form.
pub enum Part<'a> {
    /// A text field: its name and value.
    Field(&'a str, &'a str),
    /// A file: the field name, the file name, the bytes.
    File(&'a str, &'a str, &'a [u8]),
}

/// A `multipart/form-data` body of `parts`; returns (content type, body).
pub fn form(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "switchyard-test-boundary-7d1f";
    let mut body = Vec::new();
    for part in parts {
        match part {
            Part::Field(name, value) => {
                body.extend_from_slice(
                    format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            Part::File(name, file, bytes) => {
                body.extend_from_slice(
                    format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
                );
                body.extend_from_slice(bytes);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A body with one `image` file part per (file name, bytes).
pub fn multipart(files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let parts: Vec<Part<'_>> = files.iter().map(|(name, bytes)| Part::File("image", name, bytes)).collect();
    form(&parts)
}
