package accounts

// SetMarkerLimit lowers the bound on read markers per account of the
// memory and file stores for the conformance suite (conformance_test.go),
// which runs outside the package; it returns the function restoring it.
func SetMarkerLimit(n int) (restore func()) {
	old := markerLimit
	markerLimit = n
	return func() { markerLimit = old }
}
