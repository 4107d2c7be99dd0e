package scsi

// String names a sense key as SPC-4 table 48 does, in lower snake case
// (metrics labels and stmfadm list-stats -o json use it).
func (k SenseKey) String() string {
	names := [16]string{"no_sense", "recovered_error", "not_ready", "medium_error", "hardware_error",
		"illegal_request", "unit_attention", "data_protect", "blank_check", "vendor_specific",
		"copy_aborted", "aborted_command", "reserved_0c", "volume_overflow", "miscompare", "completed"}
	return names[k&0x0f]
}
