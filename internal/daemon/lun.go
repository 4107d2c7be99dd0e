package daemon

import "github.com/costar-project/costar/scsi"

func scsiLUN(n int) scsi.LUN { return scsi.LUN(n) }
