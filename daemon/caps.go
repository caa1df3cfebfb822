package daemon

import (
	"strconv"
	"strings"
	"time"

	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// capSet is a set of IRCv3 capabilities as bits, so that checking one on
// the message path is a load and a mask.
type capSet uint32

const (
	capAccountNotify capSet = 1 << iota
	capAccountTag
	capAwayNotify
	capBatch
	capCapNotify
	capChathistory
	capAccountRegistration
	capEchoMessage
	capExtendedJoin
	capLabeledResponse
	capMessageTags
	capMultiPrefix
	capSASL
	capServerTime
	capSetname
	capStandardReplies
	capUserhostInNames
	capInviteNotify
	capEventPlayback
	capMessageRedaction
	capReadMarker
	capChghost
	capMultiline
	capNoImplicitNames
	capPreAway
	capSTS
	capExtendedMonitor
)

// capability describes one capability the server offers.
type capability struct {
	name string
	bit  capSet
	// value is advertised with CAP LS 302 ("" for none).
	value string
	// feature is what the capability changes in the bytes rooms render.
	feature rooms.Features
}

// capabilities lists what CAP LS offers, in that order.
var capabilities = []capability{
	{name: "account-notify", bit: capAccountNotify},
	{name: "account-tag", bit: capAccountTag, feature: rooms.FeatAccountTag},
	{name: "away-notify", bit: capAwayNotify},
	{name: "batch", bit: capBatch, feature: rooms.FeatBatch},
	{name: "cap-notify", bit: capCapNotify},
	{name: "chghost", bit: capChghost},
	{name: "draft/account-registration", bit: capAccountRegistration, value: "custom-account-name"},
	{name: "draft/chathistory", bit: capChathistory, feature: rooms.FeatChathistory},
	{name: "draft/event-playback", bit: capEventPlayback},
	{name: "draft/message-redaction", bit: capMessageRedaction, feature: rooms.FeatRedaction},
	{name: "draft/multiline", bit: capMultiline, feature: rooms.FeatMultiline},
	{name: "draft/no-implicit-names", bit: capNoImplicitNames, feature: rooms.FeatNoImplicitNames},
	{name: "draft/pre-away", bit: capPreAway},
	{name: "draft/read-marker", bit: capReadMarker},
	{name: "echo-message", bit: capEchoMessage, feature: rooms.FeatEcho},
	{name: "extended-join", bit: capExtendedJoin, feature: rooms.FeatExtendedJoin},
	{name: "extended-monitor", bit: capExtendedMonitor},
	{name: "invite-notify", bit: capInviteNotify, feature: rooms.FeatInviteNotify},
	{name: "labeled-response", bit: capLabeledResponse},
	{name: "message-tags", bit: capMessageTags, feature: rooms.FeatTags},
	{name: "multi-prefix", bit: capMultiPrefix, feature: rooms.FeatMultiPrefix},
	{name: "sasl", bit: capSASL, value: saslMechs},
	{name: "server-time", bit: capServerTime, feature: rooms.FeatTime},
	{name: "setname", bit: capSetname},
	{name: "standard-replies", bit: capStandardReplies},
	{name: "sts", bit: capSTS},
	{name: "userhost-in-names", bit: capUserhostInNames, feature: rooms.FeatUserhostInNames},
}

func lookupCap(name string) (capability, bool) {
	for _, c := range capabilities {
		if c.name == name {
			return c, true
		}
	}
	return capability{}, false
}

// setCaps records a new capability set and the rendering features it
// implies, which rooms read on every delivery.
func (s *Session) setCaps(caps capSet) {
	var f rooms.Features
	for _, c := range capabilities {
		if caps&c.bit != 0 {
			f |= c.feature
		}
	}
	if s.mode.Load() != 0 {
		f |= rooms.FeatEcho // a person sees what they said (see setMode)
	}
	if caps&capBatch == 0 {
		f &^= rooms.FeatMultiline // the batch is how it is sent
	}
	s.caps.Store(uint32(caps))
	s.features.Store(uint32(f))
}

// Features reports the rendering features of the session's capabilities.
// Safe from any goroutine.
func (s *Session) Features() rooms.Features { return rooms.Features(s.features.Load()) }

func (s *Session) hasCap(c capSet) bool { return capSet(s.caps.Load())&c != 0 }

// capListMax bounds the capability list in one CAP line, so that server
// name, nick and subcommand still fit the 512-byte line.
const capListMax = 400

// handleCAP implements capability negotiation (IRCv3 CAP, version 302).
// A client that starts negotiating before registration holds registration
// until CAP END.
func handleCAP(s *Session, m *protocol.Message, _ []byte) error {
	// Only IRC clients negotiate: from now on the session is one, even if
	// it started as a person in a terminal.
	s.strict = true
	if s.terminal() {
		s.setMode(modeTerminal, false)
		s.pushReadDeadline(time.Now())
	}
	switch sub := strings.ToUpper(m.Params[0]); sub {
	case "LS":
		if !s.registered.Load() {
			s.capPending = true
		}
		if v := m.Param(1); v >= "302" && len(v) == 3 {
			s.capVersion = 302
			s.setCaps(capSet(s.caps.Load()) | capCapNotify) // implied by 302
		}
		var words []string
		for _, c := range capabilities {
			value := s.capValue(c)
			if c.bit == capSTS && value == "" {
				continue // off, or a client too old for values
			}
			if value != "" && s.capVersion >= 302 {
				words = append(words, c.name+"="+value)
			} else {
				words = append(words, c.name)
			}
		}
		s.sendCapList("LS", words)
	case "LIST":
		var words []string
		for _, c := range capabilities {
			if s.hasCap(c.bit) {
				words = append(words, c.name)
			}
		}
		s.sendCapList("LIST", words)
	case "REQ":
		if !s.registered.Load() {
			s.capPending = true
		}
		s.capReq(m.Param(1))
	case "END":
		if !s.registered.Load() && s.capPending {
			s.capPending = false
			s.tryRegister()
		}
	default:
		return numErr(protocol.ERR_INVALIDCAPCMD, m.Params[0], "Invalid CAP subcommand")
	}
	return nil
}

// capValue is the value c is advertised with to this session.
func (s *Session) capValue(c capability) string {
	cfg := s.srv.Config()
	switch c.bit {
	case capAccountRegistration:
		if cfg.Accounts.RegisterEarly {
			return "before-connect," + c.value
		}
	case capMultiline:
		return "max-bytes=" + strconv.Itoa(cfg.Limits.MultilineMaxBytes) + ",max-lines=" + strconv.Itoa(cfg.Limits.MultilineMaxLines)
	case capSTS:
		if s.capVersion >= 302 {
			return s.srv.stsValue(s.transport)
		}
		return ""
	}
	return c.value
}

// capReq applies a REQ all-or-nothing: one unknown capability NAKs the lot.
func (s *Session) capReq(list string) {
	var add, del capSet
	for _, word := range strings.Fields(list) {
		name, remove := strings.CutPrefix(word, "-")
		c, ok := lookupCap(name)
		if !ok || c.bit == capSTS { // a policy to read, never to request

			s.capReply("NAK", list)
			return
		}
		if remove {
			del |= c.bit
		} else {
			add |= c.bit
		}
	}
	s.setCaps((capSet(s.caps.Load()) | add) &^ del)
	s.capReply("ACK", list)
}

func (s *Session) capReply(sub, list string) {
	s.reply(protocol.Message{Source: s.srv.Config().ServerName, Command: "CAP", Params: []string{s.Nick(), sub, list}})
}

// sendCapList sends words over as many lines as needed; with CAP 302 all
// but the last carry a "*" continuation marker.
func (s *Session) sendCapList(sub string, words []string) {
	server, nick := s.srv.Config().ServerName, s.Nick()
	var line []string
	size := 0
	flush := func(last bool) {
		params := []string{nick, sub}
		if !last && s.capVersion >= 302 {
			params = append(params, "*")
		}
		params = append(params, strings.Join(line, " "))
		s.reply(protocol.Message{Source: server, Command: "CAP", Params: params})
		line, size = line[:0], 0
	}
	for _, w := range words {
		if size > 0 && size+1+len(w) > capListMax {
			flush(false)
		}
		line = append(line, w)
		size += len(w) + 1
	}
	flush(true)
}
