"""The assistant's WSGI app plus ``POST /bare``: a bare Flask endpoint that returns the same TwiML as a
typical /sms reply, without signature check, conversation or database. Used by bench/load.py only."""

from flask import Response
from twilio.twiml.messaging_response import MessagingResponse

from assistant import create_app

app = create_app()
_response = MessagingResponse()
_response.message("Monoclonal antibodies (mAbs) are proteins made in a lab that help the immune system. They are "
                  "the most used kind of immunotherapy.")
BARE = str(_response)


@app.post("/bare")
def bare() -> Response:
    return Response(BARE, mimetype="text/xml")
