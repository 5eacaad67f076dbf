package s3

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"

	"github.com/minio/minio-go/v7"

	"safedav/backend"
	"safedav/backend/claims"
)

// maxProps bounds the encoded dead properties of one resource; a PROPPATCH that would
// exceed it fails with ErrNoSpace and changes nothing.
const maxProps = 1 << 20

// propRetries is how often PatchProps retries its read-modify-write when another
// writer changed the sidecar in between (412 on the conditional PUT).
const propRetries = 8

// storedProp is the JSON form of a backend.Prop in a sidecar. InnerXML is kept as
// bytes (base64 in JSON) so that it round-trips exactly.
type storedProp struct {
	Space string `json:"ns,omitempty"`
	Local string `json:"name"`
	Lang  string `json:"lang,omitempty"`
	XML   []byte `json:"xml,omitempty"`
}

// Props returns the dead properties of name in the order they were first set, nil
// when it has none. Errors: ErrNotExist.
func (s *Store) Props(ctx context.Context, name string) ([]backend.Prop, error) {
	if err := s.checkName(name); err != nil {
		return nil, err
	}
	if _, err := s.lookup(ctx, name); err != nil {
		return nil, err
	}
	props, _, err := s.readProps(ctx, name)
	return props, err
}

// readProps reads the sidecar of name and returns its properties and S3 ETag ("" when
// there is no sidecar).
func (s *Store) readProps(ctx context.Context, name string) ([]backend.Prop, string, error) {
	rc, oi, _, err := s.core.GetObject(ctx, s.bucket, s.propsKey(name), minio.GetObjectOptions{})
	if err = mapErr(err); errors.Is(err, backend.ErrNotExist) {
		return nil, "", nil
	} else if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 2*maxProps))
	if err != nil {
		return nil, "", mapErr(err)
	}
	var stored []storedProp
	if err := json.Unmarshal(data, &stored); err != nil {
		return nil, "", errors.New("s3: damaged properties of " + name + ": " + err.Error())
	}
	var props []backend.Prop
	for _, p := range stored {
		props = append(props, backend.Prop{Name: xml.Name{Space: p.Space, Local: p.Local}, Lang: p.Lang, InnerXML: p.XML})
	}
	return props, oi.ETag, nil
}

// PatchProps applies patches to the properties of name, all or nothing: it reads the
// sidecar, applies every patch in memory and writes the result back with a
// conditional PUT (If-Match: the sidecar's S3 ETag, or If-None-Match: * when there was
// none), retrying when another writer got in between. c is checked against name at
// the start, under name's claim: properties and content are separate objects, which
// S3 cannot change in one step. Errors: ErrNotExist, ErrPrecondition, ErrNoSpace
// (more than 1 MiB of properties).
func (s *Store) PatchProps(ctx context.Context, name string, c backend.Cond, patches []backend.PropPatch) error {
	if err := s.checkName(name); err != nil {
		return err
	}
	release, err := s.claim(ctx, claims.Write(name))
	if err != nil {
		return err
	}
	defer release()
	cur, err := s.lookup(ctx, name)
	if err != nil {
		return err
	}
	if err := check(c, &cur); err != nil {
		return err
	}
	for range propRetries {
		props, etag, err := s.readProps(ctx, name)
		if err != nil {
			return err
		}
		props = backend.ApplyPatches(props, patches)
		err = s.writeProps(ctx, name, props, etag)
		if !errors.Is(err, backend.ErrPrecondition) {
			return err
		}
	}
	return backend.ErrPrecondition
}

// writeProps replaces the sidecar of name, whose S3 ETag was etag ("" for none), with
// props (deleting it when props is empty), failing with ErrPrecondition when the
// sidecar changed since it was read.
func (s *Store) writeProps(ctx context.Context, name string, props []backend.Prop, etag string) error {
	key := s.propsKey(name)
	if len(props) == 0 {
		if etag == "" {
			return nil
		}
		hctx := withHeaders(ctx, s.condHeaders(backend.Cond{IfMatch: "*"}, &object{s3etag: etag}))
		err := mapErr(s.client.RemoveObject(hctx, s.bucket, key, minio.RemoveObjectOptions{}))
		if errors.Is(err, backend.ErrNotExist) {
			err = backend.ErrPrecondition
		}
		return err
	}
	stored := make([]storedProp, len(props))
	for i, p := range props {
		stored[i] = storedProp{Space: p.Name.Space, Local: p.Name.Local, Lang: p.Lang, XML: p.InnerXML}
	}
	data, err := json.Marshal(stored)
	if err != nil {
		return err
	}
	if len(data) > maxProps {
		return backend.ErrNoSpace
	}
	opts := minio.PutObjectOptions{ContentType: "application/json"}
	if etag == "" {
		s.applyCond(&opts, backend.Cond{IfNoneMatch: true}, nil)
	} else {
		s.applyCond(&opts, backend.Cond{IfMatch: "*"}, &object{s3etag: etag})
	}
	_, err = s.putBytes(ctx, key, data, opts)
	err = mapErr(err)
	if etag != "" && errors.Is(err, backend.ErrNotExist) {
		err = backend.ErrPrecondition // deleted since read
	}
	return err
}
