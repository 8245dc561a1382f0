"""The switchable faults of the B2BUA test PBX: name -> what the PBX then does wrong.

Each fault breaks exactly one behaviour, so that only the test purposes that check that
behaviour fail. The PBX is conformant when no fault is switched on.
"""

FAULTS = {
    "bye_transferee_on_failure": "on a failed transfer, sends BYE to the transferee at once (as Asterisk 22 "
                                 "does) and to the transferor, instead of keeping their call up",
    "status_503": "the final NOTIFY of a failed transfer says 'SIP/2.0 503 Service Unavailable' instead of the "
                  "target's own status line (as Asterisk 22 does)",
    "no_notify": "never sends refer NOTIFYs (the REFER is still answered 202)",
    "notify_before_invite": "sends the final 'SIP/2.0 200 OK' NOTIFY right after the 202, before it INVITEs the "
                            "target (then carries on with the transfer)",
    "media_to_transferor": "after a successful transfer keeps relaying the transferee's RTP to the transferor's "
                           "leg, not to the target",
    "replaces_unmapped": "attended transfer and a phone's INVITE with Replaces: passes the Replaces value on "
                         "unchanged (it names the transferor's leg, which the target does not know) in a new "
                         "INVITE to the target, instead of mapping it to the target's own dialog",
    "refer_unauthenticated": "accepts (202) an out-of-dialog REFER without asking for credentials; one without "
                             "Target-Dialog is accepted too and reported failed by NOTIFY (481)",
    "no_referred_by": "its INVITE to the transfer target lacks the REFER's Referred-By",
    "no_terminated": "the final NOTIFY says 'Subscription-State: active' instead of terminated",
    "no_event_id": "the NOTIFYs of a second REFER in a dialog lack the Event ';id=' parameter",
    "ignore_refer_sub": "echoes 'Refer-Sub: false' in the 202 but sends the NOTIFYs anyway",
    "accept_bad_refer": "answers 202 to a REFER with no Refer-To or with two of them (acts on the first one)",
    "abandon_on_bye": "when the transferor hangs up after the 202, drops the transfer: cancels the target's "
                      "INVITE and hangs up the transferee",
    "hold_answer_sendrecv": "answers a re-INVITE that puts a call on hold (sendonly) with an SDP that says "
                            "sendrecv instead of the far phone's recvonly",
    "hold_stuck": "after transferring a call that was on hold, leaves the transferee's media direction "
                  "sendonly/inactive towards the target and never takes the transferee off hold",
    "no_bye_replaced": "after an attended transfer, does not end the transferor's consultation leg",
    "early_replace_fails": "rejects with 603 an attended transfer whose consultation call is still ringing",
    "ood_wrong_call": "applies an out-of-dialog REFER to the sender's newest other call, ignoring the call its "
                      "Target-Dialog names",
    "tcp_notify_udp": "sends the refer NOTIFYs over UDP even to a user reached over TCP",
    "reauth_refer": "with --challenge-refer, challenges the re-sent REFER again (never accepts it)",
    "notify_lies_ringing": "reports 'SIP/2.0 200 OK' in a NOTIFY when the target has only rung (180), then "
                           "the real outcome",
}
