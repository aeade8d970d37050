"""Recording evidence that stands without Twilio: each completed recording is fetched from
Twilio's REST API, hashed with SHA-256, kept in the recording archive (a local folder or S3)
and chained as a `recording_archived` event; `ivr verify` re-hashes it.

`archive` is where the bytes are kept, `fetch` gets them from Twilio in the background,
`verify` checks them again. Never imported by `consent_store`.
"""
