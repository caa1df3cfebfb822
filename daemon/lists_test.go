package daemon

import (
	"testing"
)

// A member who may not speak (banned, or unvoiced in a +m room) cannot
// carry text to the room in a PART reason either; others still can.
func TestMutedPartReasonDropped(t *testing.T) {
	_, addr := testServer(t)
	keeper := connect(t, addr, "keeper")
	keeper.join("#quiet")
	banned := connect(t, addr, "spammer")
	banned.join("#quiet")
	unvoiced := connect(t, addr, "unvoiced")
	unvoiced.join("#quiet")
	fine := connect(t, addr, "fine")
	fine.join("#quiet")
	keeper.sync()

	keeper.send("MODE #quiet +b spammer")
	keeper.expect("MODE")
	banned.send("PART #quiet :buy cheap pills at example.com")
	if p, _ := keeper.expect("PART"); len(p.Params) != 1 {
		t.Fatalf("banned member's PART carried a reason: %q", p.String())
	}

	keeper.send("MODE #quiet +m")
	keeper.expect("MODE")
	unvoiced.send("PART #quiet :shouting past +m")
	if p, _ := keeper.expect("PART"); len(p.Params) != 1 {
		t.Fatalf("unvoiced member's PART in +m carried a reason: %q", p.String())
	}

	keeper.send("MODE #quiet -m")
	keeper.expect("MODE")
	fine.send("PART #quiet :good night")
	if p, _ := keeper.expect("PART"); p.Param(1) != "good night" {
		t.Fatalf("a member who may speak lost the PART reason: %q", p.String())
	}
}
