"""The assistant's WSGI app plus ``POST /bare`` and ``POST /bare-voice``: bare Flask endpoints that return
the same TwiML as a typical /sms reply and a typical /voice step, without signature check, conversation or
database. Used by bench/load.py only."""

from flask import Response
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from assistant import create_app

app = create_app()
_response = MessagingResponse()
_response.message("Monoclonal antibodies (mAbs) are proteins made in a lab that help the immune system. They are "
                  "the most used kind of immunotherapy.")
BARE = str(_response)


@app.post("/bare")
def bare() -> Response:
    return Response(BARE, mimetype="text/xml")


_voice = VoiceResponse()
_voice.say("Monoclonal antibodies (mAbs) are proteins made in a lab that help the immune system. They are the most "
           "used kind of immunotherapy.", voice="Polly.Joanna-Neural", language="en-US")
_gather = _voice.gather(action="https://bench.example.org/voice/after?lang=en&n=3&t=4&try=0", method="POST",
                        timeout=6, num_digits=1, action_on_empty_result=True, input="dtmf")
_gather.say("To hear this again, press 1. For the list of topics, press 2. To get this as a text message, press 3. "
            "To talk to the care team, press 0.", voice="Polly.Joanna-Neural", language="en-US")
BARE_VOICE = str(_voice)


@app.post("/bare-voice")
def bare_voice() -> Response:
    return Response(BARE_VOICE, mimetype="text/xml")
