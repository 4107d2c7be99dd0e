package scsi

import "testing"

func TestSenseKeyString(t *testing.T) {
	for k, want := range map[SenseKey]string{
		KeyNoSense: "no_sense", KeyMediumError: "medium_error", KeyIllegalRequest: "illegal_request",
		KeyUnitAttention: "unit_attention", KeyMiscompare: "miscompare", 0x0f: "completed",
	} {
		if got := k.String(); got != want {
			t.Errorf("SenseKey(%#x) = %q, want %q", byte(k), got, want)
		}
	}
}
