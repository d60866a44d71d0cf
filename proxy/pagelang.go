package proxy

import (
	"net/http"

	"golang.org/x/text/language"
)

// The proxy's own pages (pages.go) in the visitor's language. The proxy
// reads no school's data, so it knows no school's language setting: the
// page is in the language the request's Accept-Language prefers among
// English and French (English when it wants neither), the same for every
// host.

var pageLangs = []language.Tag{language.English, language.French}

var pageMatcher = language.NewMatcher(pageLangs)

// pageLang is the language of a proxy page for r: "en" or "fr".
func pageLang(r *http.Request) string {
	h := r.Header.Get("Accept-Language")
	if h == "" {
		return "en"
	}
	tags, _, err := language.ParseAcceptLanguage(h)
	if err != nil || len(tags) == 0 {
		return "en"
	}
	if _, i, conf := pageMatcher.Match(tags...); conf != language.No && i == 1 {
		return "fr"
	}
	return "en"
}

// pageFrench are the pages' words in French, keyed by the English.
var pageFrench = map[string]string{
	"This address doesn't look right": "Cette adresse ne semble pas correcte",
	"Please check the link you followed or the address you typed, and try again.": "Vérifiez le lien que vous avez suivi ou " +
		"l’adresse que vous avez saisie, puis réessayez.",
	"School not found": "École introuvable",
	"There is no school at this address. Please check the link, or ask your school for the right address.": "Il n’y a pas " +
		"d’école à cette adresse. Vérifiez le lien, ou demandez la bonne adresse à votre école.",
	"Page not found": "Page introuvable",
	"The page you asked for doesn't exist at {school}.": "La page demandée n’existe pas chez {school}.",
	"Down for maintenance":                              "En maintenance",
	"{school} is down for maintenance. Your records are safe; please try again a little later.": "{school} est en " +
		"maintenance. Vos données sont en sécurité ; réessayez un peu plus tard.",
	"Just a moment": "Un instant",
	"{school} is starting up or very busy right now. Please try again in a few seconds.": "{school} démarre ou est très " +
		"occupée en ce moment. Réessayez dans quelques secondes.",
	"This service is starting up. Please try again in a few seconds.": "Ce service démarre. Réessayez dans quelques secondes.",
	"That's too large": "C’est trop volumineux",
	"What you sent is larger than {school} accepts. Please try a smaller file.": "Ce que vous avez envoyé dépasse ce " +
		"qu’accepte {school}. Essayez un fichier plus petit.",
	"Something was wrong with what was sent": "Un problème est survenu avec ce qui a été envoyé",
	"What your browser sent to {school} arrived broken. Please try again.": "Ce que votre navigateur a envoyé à {school} " +
		"est arrivé incomplet. Réessayez.",
	"Too many requests": "Trop de requêtes",
	"This connection cancelled too many requests. Please try again.": "Cette connexion a annulé trop de requêtes. Réessayez.",
	"Something went wrong": "Un problème est survenu",
	"We couldn't get an answer from {school} just now. Please try again in a moment.": "Nous n’avons pas obtenu de " +
		"réponse de {school} à l’instant. Réessayez dans un moment.",
	"This is taking too long": "Cela prend trop de temps",
	"{school} took too long to answer. Please try again in a moment.": "{school} a mis trop de temps à répondre. " +
		"Réessayez dans un moment.",
	"this school": "cette école",
	"Try again":   "Réessayer",
	"Reference:":  "Référence :",
}

// pageT is the English text s in lang.
func pageT(lang, s string) string {
	if lang == "fr" {
		if t, ok := pageFrench[s]; ok {
			return t
		}
	}
	return s
}
