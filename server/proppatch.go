package server

import (
	"errors"
	"net/http"

	"safedav/backend"
	"safedav/server/davxml"
)

// handleProppatch sets and removes dead properties, all or nothing (RFC 4918 §9.2).
func (s *Server) handleProppatch(w http.ResponseWriter, r *http.Request) error {
	name, err := s.targetName(r)
	if err != nil {
		return err
	}
	q, err := parseConditions(r)
	if err != nil {
		return err
	}
	cur, err := s.existing(r, q, name)
	if err != nil {
		return err
	}
	cond, err := s.evalConditions(r, q, "PROPPATCH", cur, true)
	if err != nil {
		return err
	}
	if err := s.checkLocks(r, q, lockScope{name: name}); err != nil {
		return err
	}
	patches, err := davxml.ReadProppatch(s.xmlBody(w, r))
	if err != nil {
		return xmlError(err)
	}
	// One propstat per outcome; a failure of any property fails them all (424).
	var forbidden, others []davxml.Property
	for _, p := range patches {
		prop := davxml.Property{Name: p.Prop.Name}
		if isProtected(p.Prop.Name) || p.Prop.Name == propOverwritePolicy {
			forbidden = append(forbidden, prop)
		} else {
			others = append(others, prop)
		}
	}
	var stats []davxml.Propstat
	switch {
	case len(forbidden) > 0:
		stats = append(stats, davxml.Propstat{Status: http.StatusForbidden, Props: forbidden,
			Error: "<D:cannot-modify-protected-property/>"})
		if len(others) > 0 {
			stats = append(stats, davxml.Propstat{Status: http.StatusFailedDependency, Props: others})
		}
	case s.props == nil:
		stats = append(stats, davxml.Propstat{Status: http.StatusForbidden, Props: others,
			Description: "This storage does not keep custom properties."})
	default:
		err := s.props.PatchProps(r.Context(), name, cond, patches)
		switch {
		case err == nil:
			stats = append(stats, davxml.Propstat{Status: http.StatusOK, Props: others})
		case errors.Is(err, backend.ErrNoSpace):
			stats = append(stats, davxml.Propstat{Status: http.StatusInsufficientStorage, Props: others,
				Description: "The properties are too large for this storage."})
		case errors.Is(err, backend.ErrUnsupported):
			stats = append(stats, davxml.Propstat{Status: http.StatusForbidden, Props: others,
				Description: "This storage does not keep custom properties."})
		case errors.Is(err, backend.ErrPrecondition):
			return s.lostRace(r, name, 0, cond)
		default:
			return err
		}
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(http.StatusMultiStatus)
	ms := davxml.NewMultistatus(w)
	_ = ms.Response(s.href(r, name, cur.Dir), dedupe(stats))
	return ms.Close()
}

// dedupe drops repeated property names inside each propstat (a client may set and
// then remove the same property in one request).
func dedupe(stats []davxml.Propstat) []davxml.Propstat {
	for i := range stats {
		seen := make(map[[2]string]bool, len(stats[i].Props))
		out := stats[i].Props[:0]
		for _, p := range stats[i].Props {
			k := [2]string{p.Name.Space, p.Name.Local}
			if !seen[k] {
				seen[k] = true
				out = append(out, p)
			}
		}
		stats[i].Props = out
	}
	return stats
}
