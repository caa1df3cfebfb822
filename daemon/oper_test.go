package daemon

import (
	"strings"
	"testing"

	"github.com/livechat/livechat/protocol"
)

// OPER guesses cost a password hash each, so they share the login
// throttle and the hashing pool: an address that has guessed wrong is
// slowed for every further OPER, on any connection, and an operator at
// another address is not.
func TestOperGuessesAreThrottledPerAddress(t *testing.T) {
	_, addr := testServer(t, withOperator(t))
	bystander := connect(t, addr, "bystander")

	guesser := dialFrom(t, addr, "127.0.0.9")
	guesser.register("guesser")
	for i := 1; i < maxOperFailures; i++ {
		guesser.send("OPER boss wrong")
		m, _ := guesser.expect(protocol.ERR_PASSWDMISMATCH)
		if !strings.Contains(m.Param(1), "incorrect") {
			t.Fatalf("guess %d: %v", i, m)
		}
	}
	guesser.send("OPER boss wrong")
	guesser.expect("ERROR") // the last guess a connection gets

	// A new connection from the same address gets one more guess, and is
	// then slowed even with the right password: the throttle is per address, not per
	// connection, so reconnecting does not buy more guesses.
	again := dialFrom(t, addr, "127.0.0.9")
	again.register("guesser2")
	again.send("OPER boss wrong") // past the address's free failures
	again.expect(protocol.ERR_PASSWDMISMATCH)
	again.send("OPER boss boss-pw")
	m, _ := again.expect(protocol.ERR_PASSWDMISMATCH)
	if !strings.Contains(m.Param(1), "try again in") {
		t.Fatalf("OPER after %d failures from the address: %v, want a throttle", maxOperFailures, m)
	}

	op := dialFrom(t, addr, "127.0.0.10")
	op.register("op")
	op.send("OPER boss boss-pw")
	op.expect(protocol.RPL_YOUREOPER)

	bystander.sync()
}
