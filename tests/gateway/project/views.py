from django.http import HttpRequest, HttpResponse, JsonResponse


def hello(request: HttpRequest) -> HttpResponse:
    response = JsonResponse(
        {"path": request.path, "method": request.method, "q": request.GET.get("q")},
        status=201,
    )
    response["X-Served-By"] = "django"
    response.set_cookie("flavour", "oat")
    return response


def echo_body(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.body[::-1], content_type="application/octet-stream")


def slow(request: HttpRequest) -> HttpResponse:
    import time

    time.sleep(float(request.GET.get("s", "5")))
    return HttpResponse("slept")
