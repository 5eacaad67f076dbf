package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net/http"
	"strconv"

	"safedav/backend"
	"safedav/server/idem"
)

// recordedHeaders are the response headers a replay repeats.
var recordedHeaders = []string{"ETag", "Last-Modified", "Location", "X-OC-Mtime", "Content-Type", "Retry-After"}

// idempotent runs a write once per Idempotency-Key: a retry of the same request by the
// same user within the retention window gets the first response again instead of being
// applied again (so a retried upload under "rename" does not make "report (1).pdf").
// For a PUT the body's SHA-256 is part of what must match; for COPY/MOVE the
// destination, Overwrite and Depth are.
func (s *Server) idempotent(w http.ResponseWriter, r *http.Request, h func(http.ResponseWriter, *http.Request) error) error {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return h(w, r)
	}
	hashBody, detail := r.Method == http.MethodPut, ""
	if !hashBody {
		detail = r.Header.Get("Destination") + "\x00" + r.Header.Get("Overwrite") + "\x00" + r.Header.Get("Depth")
	}
	fp := idem.Fingerprint{Principal: principal(r), Method: r.Method, Path: s.requestName(r), Detail: detail}
	rec, p, err := s.idem.Begin(r.Context(), key, fp)
	switch {
	case errors.Is(err, idem.ErrBadKey):
		return errorf(http.StatusBadRequest, "bad_idempotency_key",
			"Idempotency-Key must be 1 to 255 visible ASCII characters, e.g. a UUID.")
	case errors.Is(err, idem.ErrKeyReused):
		return keyReused()
	case errors.Is(err, idem.ErrInProgress):
		return &Error{Status: http.StatusConflict, Code: "idempotency_in_progress", Header: http.Header{"Retry-After": {"1"}},
			Message: "The first request with this Idempotency-Key is still running. Wait for it, then retry to get its answer."}
	case err != nil:
		return err
	}
	if rec != nil && rec.Unknown {
		// The first request was being applied when its server died: it may or may not
		// have been. Applying it again could do it twice, replaying an answer could
		// claim what did not happen; the client must look.
		return &Error{Status: http.StatusConflict, Code: "idempotency_outcome_unknown",
			Message: "The server stopped while the first request with this Idempotency-Key was being applied, so it may or may not have taken effect. Check the resource, then send the request again with a new key if it is still needed."}
	}
	if rec != nil {
		if hashBody && r.Body != nil {
			hw := sha256.New()
			if _, err := io.Copy(hw, r.Body); err != nil {
				return errClientGone
			}
			if rec.CheckDetail(hex.EncodeToString(hw.Sum(nil))) != nil {
				return keyReused()
			}
		}
		hdr := w.Header()
		for k, v := range rec.Header {
			hdr.Set(k, v)
		}
		hdr.Set("Idempotent-Replayed", "true")
		hdr.Set("Content-Length", strconv.Itoa(len(rec.Body)))
		w.WriteHeader(rec.Status)
		_, _ = w.Write(rec.Body)
		return nil
	}
	defer p.Abort()
	// The reservation is durable before anything changes: if it cannot be written (a
	// full disk: 507), the request is refused untouched, and once it is written a
	// crash before the record below leaves a retry told "outcome unknown" rather than
	// applied twice.
	if err := p.Reserve(); err != nil {
		return err
	}

	var hr *hashingReader
	if hashBody && r.Body != nil {
		hr = &hashingReader{r: r.Body, h: sha256.New()}
		r.Body = hr
	}
	// The response is buffered so the record is stored before the client sees the
	// answer: a retry sent right after it then replays instead of finding the key busy.
	rw := &bufferedResponse{header: make(http.Header)}
	if err := h(rw, r); err != nil {
		if unfinished(err) {
			// The client went away or its body ended early: nothing was applied, and
			// the retry must run again rather than replay this non-answer.
			return err
		}
		s.writeError(rw, r, err)
	}
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	if idem.ShouldRecord(rw.status) {
		out := idem.Record{Status: rw.status, Header: map[string]string{}}
		for _, k := range recordedHeaders {
			if v := rw.header.Get(k); v != "" {
				out.Header[k] = v
			}
		}
		if rw.body.Len() <= idem.MaxBody {
			out.Body = rw.body.Bytes()
		}
		if hr != nil && hr.eof {
			out.Detail = hex.EncodeToString(hr.h.Sum(nil))
		}
		if err := p.Done(out); err != nil {
			// The write is done and the reservation is durable: until a restart the
			// record replays from memory; after one, a retry is told the outcome is
			// unknown. Either way it is not applied twice.
			s.log.Warn("idempotency record not stored; a retry after a restart will be told the outcome is unknown", "request_id", stateOf(r).id, "error", err)
		}
	}
	hdr := w.Header()
	for k, v := range rw.header {
		hdr[k] = v
	}
	w.WriteHeader(rw.status)
	_, _ = w.Write(rw.body.Bytes())
	return nil
}

// unfinished reports an error that means the request itself did not arrive whole.
func unfinished(err error) bool {
	return errors.Is(err, errClientGone) || errors.Is(err, backend.ErrShortBody) ||
		errors.Is(err, errIncompleteBody) || errors.Is(err, errMalformedBody)
}

func keyReused() *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: "idempotency_key_reused",
		Message: "This Idempotency-Key was already used for a different request (another path, method, destination or content). Use a new key for a new request."}
}

// hashingReader hashes what the handler reads; eof says the whole body went through.
type hashingReader struct {
	r   io.ReadCloser
	h   hash.Hash
	eof bool
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	if err == io.EOF {
		hr.eof = true
	}
	return n, err
}

func (hr *hashingReader) Close() error { return hr.r.Close() }

// bufferedResponse collects a (small) response so it can be recorded before it is sent.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
