package cluster

// TEMPORARY: replaced by the helpers' files at merge.

import (
	"time"

	"safedav/backend/claims"
	"safedav/coord"
)

func (c *Cluster) Claims(wait time.Duration) claims.Claimer      { panic("stub") }
func (c *Cluster) Uploads(claimWait time.Duration) coord.Uploads { panic("stub") }
