package protocol

// Numeric replies, named as in the Modern IRC documentation
// (https://modern.ircdocs.horse/), and for SASL as in IRCv3 sasl-3.1
// (https://ircv3.net/specs/extensions/sasl-3.1). They are strings rather than
// integers because they only ever appear as a Message's Command, so no reply
// has to format a number.
//
// Each comment gives the parameters the reply carries, <client> being the
// recipient's nickname ("*" before registration). The texts after ':' are the
// customary ones; clients do not parse them.

// Registration and server information.
const (
	RPL_WELCOME  = "001" // <client> :Welcome to the <network> Network, <nick>[!<user>@<host>]
	RPL_YOURHOST = "002" // <client> :Your host is <servername>, running version <version>
	RPL_CREATED  = "003" // <client> :This server was created <datetime>
	RPL_MYINFO   = "004" // <client> <servername> <version> <user modes> <channel modes> [<channel modes with a parameter>]
	RPL_ISUPPORT = "005" // <client> <1-13 tokens> :are supported by this server
	RPL_UMODEIS  = "221" // <client> <user modes>
)

// Command replies.
const (
	RPL_AWAY          = "301" // <client> <nick> :<message>
	RPL_USERHOST      = "302" // <client> :[<reply>{ <reply>}]
	RPL_UNAWAY        = "305" // <client> :You are no longer marked as being away
	RPL_NOWAWAY       = "306" // <client> :You have been marked as being away
	RPL_WHOISUSER     = "311" // <client> <nick> <username> <host> * :<realname>
	RPL_WHOISSERVER   = "312" // <client> <nick> <server> :<server info>
	RPL_WHOISOPERATOR = "313" // <client> <nick> :is an IRC operator
	RPL_ENDOFWHO      = "315" // <client> <mask> :End of WHO list
	RPL_WHOISIDLE     = "317" // <client> <nick> <secs> <signon> :seconds idle, signon time
	RPL_ENDOFWHOIS    = "318" // <client> <nick> :End of /WHOIS list
	RPL_WHOISCHANNELS = "319" // <client> <nick> :[prefix]<channel>{ [prefix]<channel>}
	RPL_LISTSTART     = "321" // <client> Channel :Users  Name
	RPL_LIST          = "322" // <client> <channel> <client count> :<topic>
	RPL_LISTEND       = "323" // <client> :End of /LIST
	RPL_CHANNELMODEIS = "324" // <client> <channel> <modestring> <mode arguments>...
	RPL_CREATIONTIME  = "329" // <client> <channel> <creationtime>
	RPL_WHOISACCOUNT  = "330" // <client> <nick> <account> :is logged in as
	RPL_NOTOPIC       = "331" // <client> <channel> :No topic is set
	RPL_TOPIC         = "332" // <client> <channel> :<topic>
	RPL_TOPICWHOTIME  = "333" // <client> <channel> <nick> <setat>
	RPL_WHOISCERTFP   = "276" // <client> <nick> :has client certificate fingerprint <fingerprint>
	RPL_WHOISACTUALLY = "338" // <client> <nick> <user>@<ip> <ip> :Actual user@host, Actual IP
	RPL_WHOREPLY      = "352" // <client> <channel> <username> <host> <server> <nick> <flags> :<hopcount> <realname>
	RPL_NAMREPLY      = "353" // <client> <symbol> <channel> :[prefix]<nick>{ [prefix]<nick>}
	RPL_ENDOFNAMES    = "366" // <client> <channel> :End of /NAMES list
	RPL_MOTD          = "372" // <client> :<line of the motd>
	RPL_MOTDSTART     = "375" // <client> :- <server> Message of the day -
	RPL_ENDOFMOTD     = "376" // <client> :End of /MOTD command.
	RPL_WHOISHOST     = "378" // <client> <nick> :is connecting from *@<host> <ip>
	RPL_VISIBLEHOST   = "396" // <client> <host> :is now your displayed host
	RPL_WHOISSECURE   = "671" // <client> <nick> :is using a secure connection
	RPL_HELPSTART     = "704" // <client> <subject> :<first line of help section>
	RPL_HELPTXT       = "705" // <client> <subject> :<line of help text>
	RPL_ENDOFHELP     = "706" // <client> <subject> :<last line of help text>
)

// Error replies.
const (
	ERR_UNKNOWNERROR      = "400" // <client> <command>{ <subcommand>} :<info>
	ERR_NOSUCHNICK        = "401" // <client> <nickname> :No such nick/channel
	ERR_NOSUCHSERVER      = "402" // <client> <server name> :No such server
	ERR_NOSUCHCHANNEL     = "403" // <client> <channel> :No such channel
	ERR_CANNOTSENDTOCHAN  = "404" // <client> <channel> :Cannot send to channel
	ERR_TOOMANYCHANNELS   = "405" // <client> <channel> :You have joined too many channels
	ERR_NOORIGIN          = "409" // <client> :No origin specified
	ERR_NORECIPIENT       = "411" // <client> :No recipient given (<command>)
	ERR_NOTEXTTOSEND      = "412" // <client> :No text to send
	ERR_INPUTTOOLONG      = "417" // <client> :Input line was too long
	ERR_UNKNOWNCOMMAND    = "421" // <client> <command> :Unknown command
	ERR_NOMOTD            = "422" // <client> :MOTD File is missing
	ERR_NONICKNAMEGIVEN   = "431" // <client> :No nickname given
	ERR_ERRONEUSNICKNAME  = "432" // <client> <nick> :Erroneus nickname
	ERR_NICKNAMEINUSE     = "433" // <client> <nick> :Nickname is already in use
	ERR_USERNOTINCHANNEL  = "441" // <client> <nick> <channel> :They aren't on that channel
	ERR_NOTONCHANNEL      = "442" // <client> <channel> :You're not on that channel
	ERR_NOTREGISTERED     = "451" // <client> :You have not registered
	ERR_NEEDMOREPARAMS    = "461" // <client> <command> :Not enough parameters
	ERR_ALREADYREGISTERED = "462" // <client> :You may not reregister
	ERR_PASSWDMISMATCH    = "464" // <client> :Password incorrect
	ERR_CHANNELISFULL     = "471" // <client> <channel> :Cannot join channel (+l)
	ERR_UNKNOWNMODE       = "472" // <client> <modechar> :is unknown mode char to me
	ERR_INVITEONLYCHAN    = "473" // <client> <channel> :Cannot join channel (+i)
	ERR_BANNEDFROMCHAN    = "474" // <client> <channel> :Cannot join channel (+b)
	ERR_BADCHANNELKEY     = "475" // <client> <channel> :Cannot join channel (+k)
	ERR_CHANOPRIVSNEEDED  = "482" // <client> <channel> :You're not channel operator
	ERR_UMODEUNKNOWNFLAG  = "501" // <client> :Unknown MODE flag
	ERR_USERSDONTMATCH    = "502" // <client> :Cant change mode for other users
)

// SASL and account replies.
const (
	RPL_LOGGEDIN    = "900" // <client> <nick>!<user>@<host> <account> :You are now logged in as <account>
	RPL_LOGGEDOUT   = "901" // <client> <nick>!<user>@<host> :You are now logged out
	ERR_NICKLOCKED  = "902" // <client> :You must use a nick assigned to you
	RPL_SASLSUCCESS = "903" // <client> :SASL authentication successful
	ERR_SASLFAIL    = "904" // <client> :SASL authentication failed
	ERR_SASLTOOLONG = "905" // <client> :SASL message too long
	ERR_SASLABORTED = "906" // <client> :SASL authentication aborted
	ERR_SASLALREADY = "907" // <client> :You have already authenticated using SASL
	RPL_SASLMECHS   = "908" // <client> <mechanisms> :are available SASL mechanisms
)

// Replies the daemon needs beyond the basic set.
const (
	RPL_WHOISSPECIAL   = "320" // <client> <nick> :<text>
	RPL_ENDOFBANLIST   = "368" // <client> <channel> :End of channel ban list
	ERR_TOOMANYTARGETS = "407" // <client> <target> :Duplicate recipients. No message delivered
	ERR_INVALIDCAPCMD  = "410" // <client> <subcommand> :Invalid CAP command
)

// Room moderation replies.
const (
	RPL_INVITING         = "341" // <client> <nick> <channel>
	RPL_INVEXLIST        = "346" // <client> <channel> <mask> [<who> <set-ts>]
	RPL_ENDOFINVEXLIST   = "347" // <client> <channel> :End of channel invite exception list
	RPL_EXCEPTLIST       = "348" // <client> <channel> <mask> [<who> <set-ts>]
	RPL_ENDOFEXCEPTLIST  = "349" // <client> <channel> :End of channel exception list
	RPL_BANLIST          = "367" // <client> <channel> <mask> [<who> <set-ts>]
	ERR_BANNICKCHANGE    = "437" // <client> <channel> :Cannot change nickname while banned on channel
	ERR_USERONCHANNEL    = "443" // <client> <nick> <channel> :is already on channel
	ERR_KEYSET           = "467" // <client> <channel> :Channel key already set
	ERR_INVALIDMODEPARAM = "696" // <client> <target> <mode char> <parameter> :<description>
)

// WHOX and server operators.
const (
	RPL_WHOSPCRPL  = "354" // <client> [fields...] (WHOX)
	RPL_YOUREOPER  = "381" // <client> :You are now an IRC operator
	ERR_NOOPERHOST = "491" // <client> :No O-lines for your host
)

// ERR_BANLISTFULL: <client> <channel> <char> :Channel list is full
const ERR_BANLISTFULL = "478"

// MONITOR (IRCv3), WHOWAS and bot mode (IRCv3 bot-mode).
const (
	RPL_WHOWASUSER    = "314" // <client> <nick> <username> <host> * :<realname>
	RPL_WHOISBOT      = "335" // <client> <nick> :is a bot
	RPL_ENDOFWHOWAS   = "369" // <client> <nick> :End of WHOWAS
	ERR_WASNOSUCHNICK = "406" // <client> <nick> :There was no such nickname
	RPL_MONONLINE     = "730" // <client> :<nick>!<user>@<host>[,...]
	RPL_MONOFFLINE    = "731" // <client> :<nick>[,...]
	RPL_MONLIST       = "732" // <client> :<nick>[,...]
	RPL_ENDOFMONLIST  = "733" // <client> :End of MONITOR list
	ERR_MONLISTFULL   = "734" // <client> <limit> <nicks> :Monitor list is full
)

// Registered-only rooms, forwards and server bans.
const (
	RPL_STATSKLINE       = "216" // <client> <type> <mask> <set-ts> <expires-ts> :<reason> (livechat's form)
	RPL_ENDOFSTATS       = "219" // <client> <letter> :End of /STATS report
	ERR_YOUREBANNEDCREEP = "465" // <client> :You are banned from this server
	ERR_LINKCHANNEL      = "470" // <client> <channel> <target> :Forwarding to another channel
	ERR_NEEDREGGEDNICK   = "477" // <client> <channel> :You need to be identified to join
	ERR_NOPRIVILEGES     = "481" // <client> :Permission Denied- You're not an IRC operator
)
