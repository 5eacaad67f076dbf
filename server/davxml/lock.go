package davxml

import (
	"io"
	"strconv"
	"time"
)

// SupportedLock is the inner XML of the DAV:supportedlock property (RFC 4918 §15.10):
// exclusive and shared write locks. It uses the prefix D, bound to DAV: on every document
// this package writes.
const SupportedLock = `<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>` +
	`<D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>`

// ActiveLock describes one lock for DAV:lockdiscovery (RFC 4918 §14.1).
type ActiveLock struct {
	Shared bool
	Depth  int // 0, or -1 for infinity (backend.DepthInfinity); anything but 0 is written as infinity
	// Owner is the self-contained inner XML of the DAV:owner the client sent
	// (LockInfo.Owner), or nil for none.
	Owner []byte
	// Timeout is the time left; <= 0 is written as Infinite.
	Timeout time.Duration
	Token   string // the lock token URI, e.g. urn:uuid:…
	Root    string // the percent-encoded href of the lock root
}

// maxTimeout is the largest DAVTimeOutVal RFC 4918 §10.7 allows (2^32 - 1 seconds).
const maxTimeout = 1<<32 - 1

// LockDiscovery returns the inner XML of a DAV:lockdiscovery property listing locks, for
// a PROPFIND (as Property.InnerXML) or a LOCK response. It uses the prefix D for DAV:.
// No locks gives nil, an empty DAV:lockdiscovery (RFC 4918 §15.8).
func LockDiscovery(locks []ActiveLock) []byte {
	var b []byte
	for i := range locks {
		b = appendActiveLock(b, &locks[i])
	}
	return b
}

func appendActiveLock(b []byte, l *ActiveLock) []byte {
	// Element order from the DTD in RFC 4918 §14.1:
	// (lockscope, locktype, depth, owner?, timeout?, locktoken?, lockroot).
	b = append(b, "<D:activelock><D:lockscope>"...)
	if l.Shared {
		b = append(b, "<D:shared/>"...)
	} else {
		b = append(b, "<D:exclusive/>"...)
	}
	b = append(b, "</D:lockscope><D:locktype><D:write/></D:locktype><D:depth>"...)
	if l.Depth == 0 {
		b = append(b, '0')
	} else {
		b = append(b, "infinity"...)
	}
	b = append(b, "</D:depth>"...)
	if l.Owner != nil {
		b = append(b, "<D:owner>"...)
		b = append(b, l.Owner...)
		b = append(b, "</D:owner>"...)
	}
	b = append(b, "<D:timeout>"...)
	if l.Timeout <= 0 {
		b = append(b, "Infinite"...)
	} else {
		// Round up so a lock with time left never reads as Second-0.
		secs := int64((l.Timeout + time.Second - 1) / time.Second)
		secs = min(secs, maxTimeout)
		b = append(b, "Second-"...)
		b = strconv.AppendInt(b, secs, 10)
	}
	b = append(b, "</D:timeout>"...)
	if l.Token != "" {
		b = append(b, "<D:locktoken><D:href>"...)
		b = AppendEscape(b, l.Token)
		b = append(b, "</D:href></D:locktoken>"...)
	}
	b = append(b, "<D:lockroot><D:href>"...)
	b = AppendEscape(b, l.Root)
	return append(b, "</D:href></D:lockroot></D:activelock>"...)
}

// WriteLockResponse writes the body of a successful LOCK response (RFC 4918 §9.10.1):
// a DAV:prop holding DAV:lockdiscovery with locks. It returns w's error.
func WriteLockResponse(w io.Writer, locks []ActiveLock) error {
	b := make([]byte, 0, 512)
	b = append(b, xmlHeader...)
	b = append(b, `<D:prop xmlns:D="DAV:"><D:lockdiscovery>`...)
	for i := range locks {
		b = appendActiveLock(b, &locks[i])
	}
	b = append(b, "</D:lockdiscovery></D:prop>\n"...)
	_, err := w.Write(b)
	return err
}
